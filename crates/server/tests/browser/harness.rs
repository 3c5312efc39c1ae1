//! A headless Chromium driven over WebDriver, for browser tests.
//!
//! [`Browser::start`] launches `chromedriver` on a free port with a fresh profile, opens a
//! session, and saves screenshots under `<target>/screenshots/<test>/`. When Chromium or
//! chromedriver is missing, it returns `None` after a loud banner so that the test passes as
//! skipped, except under `CI=true`, where a missing browser fails the run (`.ci/run` installs
//! Debian's `chromium` and `chromium-driver`).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A window like a laptop's; phone tests resize it.
pub const DESKTOP: (u32, u32) = (1280, 900);
/// An iPhone 12-14's viewport, in CSS pixels.
pub const PHONE: (u32, u32) = (390, 844);

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
    step: usize,
}

impl Browser {
    /// A browser for `test` (the screenshot folder's name), or `None` when this machine has no
    /// Chromium and the run is not CI.
    pub async fn start(test: &str) -> Option<Browser> {
        let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .collect();
        if !missing.is_empty() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but {missing:?} missing: install chromium and chromium-driver");
            }
            eprintln!(
                "\n************************************************************************\n\
                 *  Browser test `{test}` SKIPPED: {missing:?} not found.\n\
                 *  Install Debian's chromium and chromium-driver to run it.\n\
                 ************************************************************************\n"
            );
            return None;
        }
        let profile = tempfile::tempdir().expect("a profile directory");
        let (client, driver) = session(&profile).await;
        let shots = screenshot_root().join(test);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).expect("the screenshot directory");
        Some(Browser {
            client,
            driver,
            _profile: profile,
            shots,
            step: 0,
        })
    }

    /// Saves a screenshot of the page as `<nn>-<name>.png` and prints where.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        self.step += 1;
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = self.shots.join(format!("{:02}-{name}.png", self.step));
        std::fs::write(&path, png).expect("the screenshot is written");
        println!("screenshot: {}", path.display());
        path
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("the page loads");
    }

    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("the current URL")
            .path()
            .to_owned()
    }

    /// Types into the field with this CSS selector, replacing what was there. A page that
    /// redraws itself (the inbox does on live updates) may replace the field between finding
    /// and typing; the field is then found again.
    pub async fn fill(&self, css: &str, text: &str) {
        let mut last = String::new();
        for _ in 0..5 {
            let field = self.find(css).await;
            let typed = async {
                field.clear().await?;
                field.send_keys(text).await
            };
            match typed.await {
                Ok(()) => return,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!("could not type into {css}: {last}");
    }

    /// Chooses a file in the file input with this CSS selector, finding the input again if
    /// the page redrew it between finding and choosing.
    pub async fn choose_file(&self, css: &str, file: &Path) {
        let mut last = String::new();
        for _ in 0..5 {
            match self
                .find(css)
                .await
                .send_keys(&file.display().to_string())
                .await
            {
                Ok(()) => return,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!("could not choose {} in {css}: {last}", file.display());
    }

    /// Clicks the element with this CSS selector, finding it again if the page redrew it.
    pub async fn click(&self, css: &str) {
        let mut last = String::new();
        for _ in 0..5 {
            match self.find(css).await.click().await {
                Ok(()) => return,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!("could not click {css}: {last}");
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// The visible text of the element with this CSS selector.
    pub async fn text(&self, css: &str) -> String {
        let mut last = String::new();
        for _ in 0..5 {
            // An element of the page being left goes stale: find it on the new one.
            match self.find(css).await.text().await {
                Ok(text) => return text,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!("no text for {css}: {last}");
    }

    /// Waits until the element with this CSS selector reads `want`: after a click, the page
    /// being left may still be the one answering for a moment.
    pub async fn text_becomes(&self, css: &str, want: &str) {
        let mut last = String::new();
        for _ in 0..50 {
            let script =
                format!("var e = document.querySelector({css:?}); return e ? e.innerText : null;");
            match self.try_run(&script).await {
                Ok(Value::String(text)) if text.trim() == want => return,
                Ok(other) => last = other.to_string(),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{css} never read {want:?}: last {last}");
    }

    /// Runs a script, or says why it could not run (a page still loading, say).
    pub async fn try_run(&self, script: &str) -> Result<Value, String> {
        self.client
            .execute(script, vec![])
            .await
            .map_err(|e| e.to_string())
    }

    /// Waits (a minute at most) until `condition`, a JavaScript expression, holds on the
    /// page. A script that cannot run yet (the page is between a form's post and its
    /// redirect) counts as not yet; a failure says where the browser was.
    pub async fn until(&self, what: &str, condition: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.try_run(&format!("return !!({condition});")).await {
                Ok(Value::Bool(true)) => return,
                Ok(_) => {}
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let at = match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        panic!("waited 60 s for {what} at {at}: {condition} (last script error: {last})");
    }

    pub async fn run(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("the script runs")
    }

    /// Resizes the window so that the page's viewport is `width` x `height` CSS pixels.
    pub async fn viewport(&self, (width, height): (u32, u32)) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("the window resizes");
        // The window includes any browser frame; grow it by the difference.
        let inner = self
            .run("return [window.innerWidth, window.innerHeight];")
            .await;
        let dw = width as i64 - inner[0].as_i64().unwrap_or(width as i64);
        let dh = height as i64 - inner[1].as_i64().unwrap_or(height as i64);
        if dw != 0 || dh != 0 {
            self.client
                .set_window_size((width as i64 + dw) as u32, (height as i64 + dh) as u32)
                .await
                .expect("the window resizes");
        }
    }

    /// Whether the page scrolls sideways: wider content than the viewport.
    pub async fn scrolls_sideways(&self) -> bool {
        let fits = self
            .run("return document.documentElement.scrollWidth <= window.innerWidth;")
            .await;
        fits != Value::Bool(true)
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed assertion unwinds past `close`: the driver and its Chromium still go.
        // Killing chromedriver alone would leave the browser it started running, busy with
        // the page's live updates and slowing every later test.
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-P", &self.driver.id().to_string()])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Kills chromedriver if starting the session fails part-way.
/// Starts chromedriver and opens a Chromium session through it. A port found free can be
/// taken by another process before chromedriver binds it (tests run side by side), which
/// leaves nothing listening once the other lets go: the session is then refused, so a
/// refused session is tried again with a new driver on a new port, a few times.
async fn session(profile: &tempfile::TempDir) -> (Client, Child) {
    const ATTEMPTS: usize = 3;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut driver = DriverGuard(Some(driver));
        wait_for_port(port, Duration::from_secs(20));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return (client, driver.0.take().expect("the driver process")),
            Err(error) if attempt < ATTEMPTS => {
                eprintln!("a Chromium session was refused ({error}); trying a new driver");
            }
            Err(error) => panic!("a Chromium session: {error:?}"),
        }
    }
}

struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `<target>/screenshots`: beside the `tmp` directory Cargo gives integration tests.
pub fn screenshot_root() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("screenshots")
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_for_port(port: u16, within: Duration) {
    let start = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            start.elapsed() < within,
            "chromedriver did not listen on port {port} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
