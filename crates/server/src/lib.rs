//! The `switchboard` server: configuration, the HTTP API, and the process lifecycle.

pub mod api;
pub mod config;
pub mod demo;
pub mod telemetry;
pub mod watch;
pub mod web;
mod webhooks;

/// Every binary built on this crate (the server, its tests and benches) allocates with
/// mimalloc: see the dependency's note in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use switchboard_app::auth::Bootstrap;
use switchboard_app::{AppState, Clock, SystemClock};
use switchboard_store::Store;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use config::Config;

/// Opens the database (creating the data directory for SQLite) and runs its migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("creating the data directory {}", config.data_dir.display())
        })?;
    }
    Store::open(&config.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| "opening the database")
}

/// A server running in the background, as tests and `serve` use it.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    processor: JoinHandle<()>,
    dispatcher: JoinHandle<()>,
    simulator: Option<JoinHandle<()>>,
    media: JoinHandle<()>,
    campaigns: JoinHandle<()>,
    checkpoints: JoinHandle<()>,
    indexing: JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting connections, lets requests in flight finish, and closes the database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await??;
        // Webhooks left unprocessed stay stored and are processed after the next start.
        self.processor.abort();
        // A send in flight when stopped keeps its lease until it expires, then is retried;
        // the provider id check stops a message recorded as sent from going twice.
        self.dispatcher.abort();
        // Simulated customers' actions are durable jobs: they resume after the next start.
        if let Some(simulator) = &self.simulator {
            simulator.abort();
        }
        // A download cut short leaves only a partial file; its job is retried after the lease.
        self.media.abort();
        // A campaign batch cut short leaves claims that lapse and messages already queued.
        self.campaigns.abort();
        self.checkpoints.abort();
        // Messages not yet indexed stay waiting; the next start (or search) indexes them.
        self.indexing.abort();
        self.state.store().close().await;
        Ok(())
    }

    /// Waits until the server stops by itself (it never does unless it fails).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await??;
        Ok(())
    }
}

/// Starts the server on the configured address (port 0 picks a free one) and returns once it
/// accepts connections. `first_start_token` receives a generated admin token on first start.
pub async fn start(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(RunningServer, Option<String>)> {
    let store = open_store(config).await?;
    let state = AppState::with_options(
        store,
        clock,
        switchboard_app::StateOptions {
            data_dir: config.data_dir.clone(),
            media_limit_bytes: config.media_limit_bytes,
            public_url: config.public_url.as_ref().map(|u| u.as_str().to_owned()),
        },
    );
    let bootstrap = switchboard_app::auth::bootstrap(
        &state,
        config.bootstrap_token.as_ref().map(|t| t.expose_secret()),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))
    .context("installing the bootstrap token")?;
    let generated = match bootstrap {
        Bootstrap::Generated(secret) => Some(secret),
        Bootstrap::Installed => {
            tracing::info!("installed SWITCHBOARD_BOOTSTRAP_TOKEN as an admin token");
            None
        }
        Bootstrap::NotNeeded => None,
    };
    let secure_cookies = config
        .public_url
        .as_ref()
        .is_some_and(|u| u.scheme() == "https");
    let app = api::app(state.clone())
        .merge(web::router(secure_cookies, config.media_limit_bytes).with_state(state.clone()))
        .merge(webhooks::router(config.public_url.clone()).with_state(state.clone()))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    let processor = tokio::spawn(process_webhooks(state.clone()));
    let dispatcher = tokio::spawn(dispatch(
        state.clone(),
        switchboard_app::dispatch::Dispatcher::with_settings(
            config.public_url.as_ref().map(|u| u.as_str().to_owned()),
            config.dispatch.clone(),
        ),
    ));
    let simulator = config
        .sandbox_customers
        .then(|| tokio::spawn(simulate(state.clone())));
    let media = tokio::spawn(fetch_media(
        state.clone(),
        switchboard_app::media::MediaFetcher::default(),
    ));
    let campaigns = tokio::spawn(run_campaigns(
        state.clone(),
        switchboard_app::campaigns::CampaignRunner::default(),
    ));
    let checkpoints = tokio::spawn(checkpoint_log(state.store().clone()));
    let indexing = tokio::spawn(index_for_search(state.store().clone()));
    tracing::info!(%addr, database = state.store().backend().as_str(), "switchboard is listening");
    Ok((
        RunningServer {
            addr,
            state,
            shutdown: Some(tx),
            task,
            processor,
            dispatcher,
            simulator,
            media,
            campaigns,
            checkpoints,
            indexing,
        },
        generated,
    ))
}

/// Processes stored webhooks when one arrives, and every few seconds in case a wake-up was
/// missed (another node stored it, or processing failed and will be tried again).
async fn process_webhooks(state: AppState) {
    loop {
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), state.webhooks_waiting()).await;
        loop {
            match switchboard_app::webhooks::process_pending(&state).await {
                Ok(0) => break,
                Ok(_) => continue,
                Err(error) => {
                    tracing::error!(?error, "processing webhooks");
                    break;
                }
            }
        }
    }
}

/// Sends due messages: at once when a send is queued here, and polling briefly for those
/// that fall due later or were queued by another node. Several batches go at once, so that
/// one is claimed and another recorded while a third waits on its sends.
async fn dispatch(state: AppState, dispatcher: switchboard_app::dispatch::Dispatcher) {
    let workers = dispatcher.settings().workers.max(1);
    let dispatcher = Arc::new(dispatcher);
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (state, dispatcher) = (state.clone(), dispatcher.clone());
        loops.spawn(async move {
            loop {
                match dispatcher.run_once(&state).await {
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    Err(error) => tracing::error!(?error, "dispatching"),
                }
                let _ = tokio::time::timeout(
                    std::time::Duration::from_millis(200),
                    state.dispatch_waiting(),
                )
                .await;
            }
        });
    }
    while loops.join_next().await.is_some() {}
}

/// Feeds running campaigns to the outbound queue, starts scheduled ones when their time comes
/// and closes interactions that timed out; polls when there is nothing to do.
async fn run_campaigns(state: AppState, runner: switchboard_app::campaigns::CampaignRunner) {
    loop {
        match runner.run_once(&state).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(error) => tracing::error!(?error, "running campaigns"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Keeps SQLite's write-ahead log copied into the database beside the writer rather than by
/// it: every 50 ms while writes come in, every second when they stop. On PostgreSQL it ends
/// at once.
async fn checkpoint_log(store: switchboard_store::Store) {
    let mut copied_before = None;
    loop {
        let wait = match store.checkpoint().await {
            Ok(None) => return,
            Ok(Some(pass)) => {
                let idle =
                    pass.copied_pages == pass.log_pages && copied_before == Some(pass.copied_pages);
                copied_before = Some(pass.copied_pages);
                if idle {
                    1000
                } else {
                    50
                }
            }
            Err(error) => {
                tracing::warn!(?error, "checkpointing the write-ahead log");
                1000
            }
        };
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    }
}

/// Keeps SQLite's search index close behind the messages written (a search catches up the
/// rest itself): a batch whenever one has gathered, at most four times a second. On
/// PostgreSQL it ends at once.
async fn index_for_search(store: switchboard_store::Store) {
    const BATCH: i64 = 5_000;
    loop {
        let wait = match store.index_search_backlog(BATCH).await {
            Ok(None) => return,
            Ok(Some(taken)) if taken == BATCH as u64 => continue,
            Ok(Some(_)) => 250,
            Err(error) => {
                tracing::warn!(?error, "indexing messages for search");
                1000
            }
        };
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    }
}

/// Carries out the sandbox customers' actions as they fall due. Sleeping until the next one
/// (at most a second, so actions queued meanwhile are not late) keeps an idle server quiet.
async fn simulate(state: AppState) {
    loop {
        match switchboard_app::sandbox::run_once(&state).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(error) => tracing::error!(?error, "running the sandbox"),
        }
        let wait = match state
            .store()
            .next_due(switchboard_app::sandbox::SANDBOX_QUEUE)
            .await
        {
            Ok(Some(at)) => (at - state.now())
                .clamp(time::Duration::milliseconds(50), time::Duration::seconds(1)),
            _ => time::Duration::seconds(1),
        };
        tokio::time::sleep(wait.unsigned_abs()).await;
    }
}

/// Downloads inbound media when a download is queued, and every second for retries that fell
/// due (or work another node queued).
async fn fetch_media(state: AppState, fetcher: switchboard_app::media::MediaFetcher) {
    loop {
        match fetcher.run_once(&state).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(error) => tracing::error!(?error, "fetching media"),
        }
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(1), state.media_waiting()).await;
    }
}

/// `switchboard serve`: runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let (server, generated) = start(&config, Arc::new(SystemClock)).await?;
    if let Some(secret) = generated {
        println!(
            "\nFirst start: no users or tokens yet, so an admin API token was created.\n\
             It is shown only this once:\n\n    {secret}\n\n\
             Try: curl -H 'Authorization: Bearer {secret}' http://{}/api/v1/me\n",
            server.addr
        );
    }
    println!("Switchboard is listening on http://{}", server.addr);
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.stop().await
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
