//! How fast a CSV file of 1,000,000 contacts is imported into a list on SQLite, and in how
//! much memory (issue 6, R6.1):
//!
//!     RUST_LOG=error cargo run --release -p switchboard --example list_import_bench
//!
//! The file is generated as it is fed, in 64 KiB chunks as an upload arrives, so it never
//! exists whole in memory or on disk. The import is the one `POST /api/v1/lists/{id}/import`
//! runs ([`ContactImport::into_list`]), driven directly so that the figures are the import's
//! and not the HTTP client's. Every 100th row repeats an earlier phone in another spelling,
//! every 10,000th has a bad phone, and half of the rows carry an opt-in.
//!
//! `LIST_IMPORT_BENCH_ROWS` changes the number of rows; `LIST_IMPORT_BENCH_DATABASE_URL` names
//! another (empty) database, such as a PostgreSQL one. Peak memory is the process's (`VmHWM`),
//! which includes the idle server started around the import.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use switchboard::config::{Config, FlagOverrides};
use switchboard_app::contacts::ContactImport;
use switchboard_app::SystemClock;
use switchboard_core::ListId;

const TOKEN: &str = "list-import-bench-bootstrap-token-0123456789ab";
const CHUNK_BYTES: usize = 64 * 1024;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: u64 = std::env::var("LIST_IMPORT_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let temp = tempfile::tempdir()?;
    let db_path = temp.path().join("lists.db");
    let url = std::env::var("LIST_IMPORT_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", db_path.display()));
    println!(
        "switchboard list import bench: {}, {rows} rows, {} cores",
        url.split(':').next().unwrap_or_default(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let config = config(&url, temp.path())?;
    let (server, _) = switchboard::start(&config, Arc::new(SystemClock)).await?;
    let state = server.state.clone();
    let principal = switchboard_app::auth::authenticate(&state, TOKEN)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let list = switchboard_app::lists::create_list(
        &state,
        &principal,
        serde_json::from_value(json!({"name": "Everyone"}))?,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let list_id: ListId = list.list.id;
    let before = peak_rss_kib();

    let started = Instant::now();
    let mut import = ContactImport::into_list(&state, &principal, "bench.csv", list_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut file = CsvFile::new(rows);
    let mut chunk = Vec::with_capacity(CHUNK_BYTES + 256);
    let mut bytes = 0u64;
    let mut next_report = rows / 4;
    while file.fill(&mut chunk) {
        bytes += chunk.len() as u64;
        import
            .feed(&chunk)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        chunk.clear();
        if file.row >= next_report && next_report > 0 {
            println!(
                "  {:>9} rows in {:>6.1} s, peak RSS {:>4} MiB",
                file.row,
                started.elapsed().as_secs_f64(),
                peak_rss_kib() / 1024
            );
            next_report += rows / 4;
        }
    }
    let report = import
        .finish()
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let elapsed = started.elapsed().as_secs_f64();
    let members = state.store().count_list_members(list_id).await?;

    println!(
        "file: {:.0} MiB; rows {}, created {}, updated {}, duplicates {}, opt-ins {}, failed {}",
        bytes as f64 / 1024.0 / 1024.0,
        report.rows,
        report.created,
        report.updated,
        report.duplicates,
        report.opt_ins,
        report.failed()
    );
    println!("list members: {members}");
    println!(
        "imported in {elapsed:.1} s: {:.0} rows/s",
        report.rows as f64 / elapsed
    );
    println!(
        "peak RSS: {} MiB before the import, {} MiB after",
        before / 1024,
        peak_rss_kib() / 1024
    );
    if db_path.exists() {
        println!(
            "database: {:.0} MB",
            std::fs::metadata(&db_path).map_or(0, |m| m.len()) as f64 / 1e6
        );
    }
    anyhow::ensure!(
        members == report.created,
        "every new contact should be in the list once"
    );
    server.stop().await?;
    Ok(())
}

/// The generated file: a header, then `rows` rows, produced a chunk at a time.
struct CsvFile {
    rows: u64,
    row: u64,
    header_written: bool,
}

impl CsvFile {
    fn new(rows: u64) -> Self {
        Self {
            rows,
            row: 0,
            header_written: false,
        }
    }

    /// Appends rows to `chunk` until it holds about [`CHUNK_BYTES`]; false when the file ended.
    fn fill(&mut self, chunk: &mut Vec<u8>) -> bool {
        use std::io::Write;
        if !self.header_written {
            chunk.extend_from_slice(b"name,phone,locale,plan,opt_in_source,opt_in_at\n");
            self.header_written = true;
        }
        while chunk.len() < CHUNK_BYTES && self.row < self.rows {
            let i = self.row;
            self.row += 1;
            let phone = if i % 10_000 == 9_999 {
                "12345".to_owned()
            } else if i % 100 == 99 {
                // An earlier row's number, written the other way.
                let (exchange, line) = number(i - 50);
                format!("001 212 {exchange} {line:04}")
            } else {
                let (exchange, line) = number(i);
                format!("+1212{exchange}{line:04}")
            };
            let locale = ["en_US", "es_US", "en", "fr"][(i % 4) as usize];
            let plan = ["gold", "silver", "bronze"][(i % 3) as usize];
            let _ = if i.is_multiple_of(2) {
                writeln!(
                    chunk,
                    "Customer {i},{phone},{locale},{plan},web form,2024-05-01"
                )
            } else {
                writeln!(chunk, "\"Customer {i}, Jr\",{phone},{locale},{plan},,")
            };
        }
        !chunk.is_empty()
    }
}

/// A valid New York number for row `i`: an exchange (never N11) and a line.
fn number(i: u64) -> (u64, u64) {
    let exchange = (200..1000)
        .filter(|e| e % 100 != 11)
        .nth((i / 10_000) as usize)
        .unwrap_or(999);
    (exchange, i % 10_000)
}

/// The process's peak resident memory, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn config(url: &str, dir: &std::path::Path) -> anyhow::Result<Config> {
    let empty = dir.join("switchboard.toml");
    std::fs::write(&empty, "")?;
    let env = [
        ("SWITCHBOARD_DATABASE_URL", url.to_owned()),
        ("SWITCHBOARD_LISTEN", "127.0.0.1:0".to_owned()),
        ("SWITCHBOARD_BOOTSTRAP_TOKEN", TOKEN.to_owned()),
        ("SWITCHBOARD_DATA_DIR", dir.display().to_string()),
        ("SWITCHBOARD_SANDBOX_CUSTOMERS", "false".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    Config::load(Some(&empty), env, FlagOverrides::default())
        .map_err(|problems| anyhow::anyhow!("bench configuration: {problems:?}"))
}
