//! The `switchboard` command.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use switchboard::config::{Config, FlagOverrides};
use switchboard_app::auth::NewToken;
use switchboard_app::users::NewUser;
use switchboard_app::{AppState, SystemClock};
use switchboard_core::{Permission, Role};

/// Switchboard: one inbox and one API for WhatsApp, Messenger and SMS, compliant before send.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML configuration file (default: ./switchboard.toml if present).
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    flags: Flags,
    #[command(subcommand)]
    command: Command,
}

/// Flags that override the file and the environment.
#[derive(Args)]
struct Flags {
    /// Address and port to listen on [default: 127.0.0.1:8080]
    #[arg(long, global = true)]
    listen: Option<String>,
    /// sqlite://path or postgres://user@host/db [default: SQLite under the data directory]
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Where the SQLite file and media are kept [default: ./switchboard-data]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// The public URL providers reach this server at
    #[arg(long, global = true)]
    public_url: Option<String>,
    /// text or json [default: text]
    #[arg(long, global = true)]
    log_format: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Run the server with sandbox senders, simulated customers and sample data, and show what
    /// happens. Its data goes to ./switchboard-demo unless a data directory or database is given.
    Demo,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Follow campaigns.
    #[command(subcommand)]
    Campaign(CampaignCommand),
}

#[derive(Subcommand)]
enum CampaignCommand {
    /// Show a campaign's progress live until it completes or stops (Ctrl-C leaves it running).
    Watch {
        /// The campaign's id.
        id: switchboard_core::CampaignId,
        /// Print the counters once and exit.
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token and print its secret (shown once).
    Create {
        #[arg(long)]
        role: Option<Role>,
        #[arg(long, default_value = "command line")]
        name: String,
        /// Act as this user (by e-mail); the role defaults to theirs.
        #[arg(long)]
        user: Option<String>,
        /// Narrow the token to these permissions, comma-separated (e.g. contacts:read).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<Permission>>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password, if any, is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        role: Role,
        /// Read a password for the web inbox from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let demo = matches!(cli.command, Command::Demo);
    // The demo keeps its sample data apart from a real installation's, unless told where.
    let data_dir = match cli.flags.data_dir {
        None if demo
            && cli.flags.database_url.is_none()
            && std::env::var_os("SWITCHBOARD_DATA_DIR").is_none()
            && std::env::var_os("SWITCHBOARD_DATABASE_URL").is_none() =>
        {
            Some(PathBuf::from("switchboard-demo"))
        }
        other => other,
    };
    let flags = FlagOverrides {
        listen: cli.flags.listen,
        database_url: cli.flags.database_url,
        data_dir,
        public_url: cli.flags.public_url,
        log_format: cli.flags.log_format,
    };
    let config = match Config::load(cli.config.as_deref(), std::env::vars(), flags) {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("switchboard: the configuration has problems:");
            for p in problems {
                eprintln!("  - {p}");
            }
            std::process::exit(2);
        }
    };
    // The demo prints a feed of what happens; request logs would bury it.
    let default_filter = if demo {
        "warn"
    } else {
        switchboard::telemetry::DEFAULT_FILTER
    };
    switchboard::telemetry::init(config.log_format, default_filter);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli.command, config))
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => switchboard::serve(config).await,
        Command::Demo => switchboard::demo::run(config).await,
        Command::Migrate => {
            let store = switchboard::open_store(&config).await?;
            println!("{} schema is up to date", store.backend().as_str());
            store.close().await;
            Ok(())
        }
        Command::Token(TokenCommand::Create {
            role,
            name,
            user,
            scopes,
        }) => {
            let state = state(&config).await?;
            let user_id = match user {
                Some(email) => Some(
                    state
                        .store()
                        .find_user_by_email(&email.trim().to_lowercase())
                        .await
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?
                        .with_context(|| format!("no user with e-mail {email}"))?
                        .id,
                ),
                None => None,
            };
            let issued = switchboard_app::auth::create_token_unchecked(
                &state,
                NewToken {
                    name,
                    role,
                    scopes,
                    user_id,
                    expires_at: None,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", issued.secret);
            state.store().close().await;
            Ok(())
        }
        Command::Campaign(CampaignCommand::Watch { id, once }) => {
            let state = state(&config).await?;
            let watched = switchboard::watch::watch(&state, id, once).await;
            state.store().close().await;
            watched
        }
        Command::User(UserCommand::Create {
            email,
            name,
            role,
            password_stdin,
        }) => {
            let password = if password_stdin {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                let s = s.trim_end_matches(['\r', '\n']).to_owned();
                if s.is_empty() {
                    bail!("--password-stdin was given but standard input was empty");
                }
                Some(s)
            } else {
                None
            };
            let state = state(&config).await?;
            let user = switchboard_app::users::create_user_unchecked(
                &state,
                NewUser {
                    email,
                    name,
                    role,
                    password,
                    default_sender_id: None,
                    permitted_sender_ids: Vec::new(),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", user.id);
            state.store().close().await;
            Ok(())
        }
    }
}

async fn state(config: &Config) -> anyhow::Result<AppState> {
    let store = switchboard::open_store(config).await?;
    Ok(AppState::new(store, Arc::new(SystemClock)))
}
