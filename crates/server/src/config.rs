//! Typed configuration: defaults, then `switchboard.toml`, then `SWITCHBOARD_*` environment
//! variables, then command-line flags. Every problem is reported at once, at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The largest attachment limit that may be configured.
const MAX_MEDIA_LIMIT_BYTES: i64 = 100_000_000;

/// The settings as layered from their sources, before validation. Each field's doc comment is
/// its reference documentation (the README's configuration table repeats it).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RawConfig {
    /// Address and port to listen on (`SWITCHBOARD_LISTEN`).
    pub listen: String,
    /// `sqlite://path` or `postgres://user@host/db` (`SWITCHBOARD_DATABASE_URL`). Default: an
    /// SQLite file `switchboard.db` under the data directory.
    pub database_url: Option<String>,
    /// Where Switchboard keeps its SQLite file and media (`SWITCHBOARD_DATA_DIR`).
    pub data_dir: PathBuf,
    /// The URL customers' providers reach this server at, for webhook signatures and links
    /// (`SWITCHBOARD_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// On first start with no users, an admin API token with this value is created
    /// (`SWITCHBOARD_BOOTSTRAP_TOKEN`, at least 24 characters).
    pub bootstrap_token: Option<String>,
    /// `text` or `json` (`SWITCHBOARD_LOG_FORMAT`).
    pub log_format: String,
    /// Seconds a dispatcher holds a claimed send before another node may take it over
    /// (`SWITCHBOARD_DISPATCH_LEASE_SECONDS`).
    pub dispatch_lease_seconds: u32,
    /// After a node stopped mid-send, or Meta left a send unanswered, seconds to wait for
    /// WhatsApp's statuses to tell whether the message went, before sending it again
    /// (`SWITCHBOARD_DISPATCH_IN_FLIGHT_GRACE_SECONDS`).
    pub dispatch_in_flight_grace_seconds: u32,
    /// Whether the sandbox's simulated customers act (deliver, read, answer) on what sandbox
    /// senders send (`SWITCHBOARD_SANDBOX_CUSTOMERS`). Off, their actions wait in the queue.
    pub sandbox_customers: bool,
    /// The largest file, in bytes, that may be attached to an outbound message
    /// (`SWITCHBOARD_MEDIA_LIMIT_BYTES`, R5.6); inbound files are kept whatever their size.
    pub media_limit_bytes: u64,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            database_url: None,
            data_dir: PathBuf::from("./switchboard-data"),
            public_url: None,
            bootstrap_token: None,
            log_format: "text".to_owned(),
            dispatch_lease_seconds: 60,
            dispatch_in_flight_grace_seconds: 120,
            sandbox_customers: true,
            media_limit_bytes: switchboard_core::sender::DEFAULT_MEDIA_SIZE_LIMIT_BYTES as u64,
        }
    }
}

/// Values given as command-line flags; those left out do not override other sources.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub public_url: Option<url::Url>,
    pub bootstrap_token: Option<SecretString>,
    pub log_format: LogFormat,
    pub dispatch: switchboard_app::dispatch::DispatchSettings,
    pub sandbox_customers: bool,
    pub media_limit_bytes: i64,
}

impl Config {
    /// Layers the sources. `file` is an explicit config path (`--config`); without one,
    /// `switchboard.toml` in the working directory is read if it exists.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: FlagOverrides,
    ) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        match file {
            Some(path) if !path.exists() => {
                problems.push(format!("config file {} does not exist", path.display()));
            }
            Some(path) => figment = figment.merge(Toml::file(path)),
            None => figment = figment.merge(Toml::file("switchboard.toml")),
        }
        // The environment is passed in (not read here) so tests need not mutate the process's.
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix("SWITCHBOARD_")?.to_ascii_lowercase();
                let known = matches!(
                    key.as_str(),
                    "listen"
                        | "database_url"
                        | "data_dir"
                        | "public_url"
                        | "bootstrap_token"
                        | "log_format"
                        | "dispatch_lease_seconds"
                        | "dispatch_in_flight_grace_seconds"
                        | "sandbox_customers"
                        | "media_limit_bytes"
                );
                known.then_some((key, v))
            })
            .collect();
        for (key, value) in env {
            // The environment holds only strings; a switch is read as one here, so `false`
            // means off rather than failing to be a boolean.
            if key == "sandbox_customers" {
                match value.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "on" | "yes" => {
                        figment = figment.merge(Serialized::default(&key, true));
                    }
                    "false" | "0" | "off" | "no" => {
                        figment = figment.merge(Serialized::default(&key, false));
                    }
                    other => problems.push(format!(
                        "SWITCHBOARD_{}={other:?}: expected true or false",
                        key.to_ascii_uppercase()
                    )),
                }
                continue;
            }
            if key == "media_limit_bytes" {
                match value.trim().parse::<u64>() {
                    Ok(bytes) => figment = figment.merge(Serialized::default(&key, bytes)),
                    Err(_) => problems.push(format!(
                        "SWITCHBOARD_MEDIA_LIMIT_BYTES={value:?}: expected a whole number of bytes"
                    )),
                }
                continue;
            }
            // Likewise numbers: a string is not a u32 to figment.
            if matches!(
                key.as_str(),
                "dispatch_lease_seconds" | "dispatch_in_flight_grace_seconds"
            ) {
                match value.trim().parse::<u32>() {
                    Ok(seconds) => figment = figment.merge(Serialized::default(&key, seconds)),
                    Err(_) => problems.push(format!(
                        "SWITCHBOARD_{}={value:?}: expected a whole number of seconds",
                        key.to_ascii_uppercase()
                    )),
                }
                continue;
            }
            figment = figment.merge(Serialized::default(&key, value));
        }
        figment = figment.merge(Serialized::defaults(flags));
        let raw: RawConfig = match figment.extract() {
            Ok(raw) => raw,
            Err(errors) => {
                problems.extend(errors.into_iter().map(|e| e.to_string()));
                return Err(problems);
            }
        };
        let config = Self::validate(raw, &mut problems);
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(problems),
        }
    }

    fn validate(raw: RawConfig, problems: &mut Vec<String>) -> Option<Config> {
        let listen = raw
            .listen
            .parse::<SocketAddr>()
            .map_err(|e| problems.push(format!("listen = {:?}: {e}", raw.listen)))
            .ok();
        let database_url = raw.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", raw.data_dir.join("switchboard.db").display())
        });
        if let Err(e) = switchboard_store::Backend::from_url(&database_url) {
            problems.push(format!("database_url: {e}"));
        }
        let public_url = raw
            .public_url
            .as_deref()
            .and_then(|u| match url::Url::parse(u) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                Ok(_) => {
                    problems.push(format!("public_url = {u:?}: must be an http or https URL"));
                    None
                }
                Err(e) => {
                    problems.push(format!("public_url = {u:?}: {e}"));
                    None
                }
            });
        let bootstrap_token = raw
            .bootstrap_token
            .filter(|t| !t.is_empty())
            .map(SecretString::from);
        if let Some(token) = &bootstrap_token {
            let n = token.expose_secret().chars().count();
            if n < switchboard_app::auth::MIN_BOOTSTRAP_TOKEN_CHARS {
                problems.push(format!(
                    "bootstrap_token: must be at least {} characters (it has {n})",
                    switchboard_app::auth::MIN_BOOTSTRAP_TOKEN_CHARS
                ));
            }
        }
        let log_format = match raw.log_format.as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            other => {
                problems.push(format!("log_format = {other:?}: expected text or json"));
                None
            }
        };
        if raw.dispatch_lease_seconds == 0 {
            problems.push("dispatch_lease_seconds: must be at least 1".to_owned());
        }
        // Up to 100 MB, WhatsApp's largest (a document): a file goes through memory on its
        // way to a provider.
        let media_limit_bytes = match i64::try_from(raw.media_limit_bytes) {
            Ok(bytes) if (1..=MAX_MEDIA_LIMIT_BYTES).contains(&bytes) => bytes,
            _ => {
                problems.push(format!(
                    "media_limit_bytes = {}: must be between 1 and {MAX_MEDIA_LIMIT_BYTES} bytes",
                    raw.media_limit_bytes,
                ));
                0
            }
        };
        let dispatch = switchboard_app::dispatch::DispatchSettings {
            lease: time::Duration::seconds(raw.dispatch_lease_seconds.into()),
            in_flight_grace: time::Duration::seconds(raw.dispatch_in_flight_grace_seconds.into()),
            ..Default::default()
        };
        Some(Config {
            listen: listen?,
            dispatch,
            sandbox_customers: raw.sandbox_customers,
            media_limit_bytes,
            database_url,
            data_dir: raw.data_dir,
            public_url,
            bootstrap_token,
            log_format: log_format?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        // An explicit missing file is an error; defaults alone come from no file at all.
        assert!(Config::load(Some(&missing), env(&[]), FlagOverrides::default()).is_err());
        let file = dir.path().join("empty.toml");
        std::fs::write(&file, "").unwrap();
        let config = Config::load(Some(&file), env(&[]), FlagOverrides::default()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.database_url,
            "sqlite://./switchboard-data/switchboard.db"
        );
        assert_eq!(config.log_format, LogFormat::Text);
    }

    #[test]
    fn file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("switchboard.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\ndata_dir = \"/var/lib/sb\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&file),
            env(&[
                ("SWITCHBOARD_LISTEN", "127.0.0.1:9100"),
                ("SWITCHBOARD_PUBLIC_URL", "https://sb.example.com"),
                ("SWITCHBOARD_TEST_DATABASE_URL", "ignored"),
                ("PATH", "/bin"),
            ]),
            FlagOverrides {
                listen: Some("127.0.0.1:9200".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9200", "flag wins");
        assert_eq!(
            config.database_url, "sqlite:///var/lib/sb/switchboard.db",
            "file"
        );
        assert_eq!(config.log_format, LogFormat::Json, "file");
        assert_eq!(
            config.public_url.unwrap().as_str(),
            "https://sb.example.com/",
            "environment"
        );
    }

    #[test]
    fn dispatch_timings_come_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("switchboard.toml");
        std::fs::write(&file, "").unwrap();
        let config = Config::load(
            Some(&file),
            env(&[
                ("SWITCHBOARD_DISPATCH_LEASE_SECONDS", "2"),
                ("SWITCHBOARD_DISPATCH_IN_FLIGHT_GRACE_SECONDS", " 8 "),
            ]),
            FlagOverrides::default(),
        )
        .unwrap();
        assert_eq!(config.dispatch.lease, time::Duration::seconds(2));
        assert_eq!(config.dispatch.in_flight_grace, time::Duration::seconds(8));
        let problems = Config::load(
            Some(&file),
            env(&[("SWITCHBOARD_DISPATCH_LEASE_SECONDS", "soon")]),
            FlagOverrides::default(),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].contains("SWITCHBOARD_DISPATCH_LEASE_SECONDS"));
    }

    #[test]
    fn the_attachment_limit_is_configurable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("switchboard.toml");
        std::fs::write(&file, "").unwrap();
        let load = |value: &str| {
            Config::load(
                Some(&file),
                env(&[("SWITCHBOARD_MEDIA_LIMIT_BYTES", value)]),
                FlagOverrides::default(),
            )
        };
        assert_eq!(load("5000000").unwrap().media_limit_bytes, 5_000_000);
        let defaults = Config::load(Some(&file), env(&[]), FlagOverrides::default()).unwrap();
        assert_eq!(defaults.media_limit_bytes, 2_500_000);
        for bad in ["0", "big", "100000001"] {
            let problems = load(bad).unwrap_err();
            assert_eq!(problems.len(), 1, "{bad}: {problems:#?}");
            assert!(
                problems[0].contains("media_limit_bytes") || problems[0].contains("MEDIA_LIMIT")
            );
        }
    }

    #[test]
    fn every_problem_is_reported_together() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("switchboard.toml");
        std::fs::write(&file, "").unwrap();
        let problems = Config::load(
            Some(&file),
            env(&[
                ("SWITCHBOARD_LISTEN", "nowhere"),
                ("SWITCHBOARD_DATABASE_URL", "mysql://x"),
                ("SWITCHBOARD_PUBLIC_URL", "ftp://x"),
                ("SWITCHBOARD_BOOTSTRAP_TOKEN", "short"),
                ("SWITCHBOARD_LOG_FORMAT", "xml"),
            ]),
            FlagOverrides::default(),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:#?}");
    }

    #[test]
    fn the_bootstrap_token_never_prints() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("switchboard.toml");
        std::fs::write(&file, "").unwrap();
        let config = Config::load(
            Some(&file),
            env(&[(
                "SWITCHBOARD_BOOTSTRAP_TOKEN",
                "a-very-secret-bootstrap-token",
            )]),
            FlagOverrides::default(),
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("a-very-secret"));
    }
}
