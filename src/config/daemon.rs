//! The daemon's own settings: `config/landfall.yaml`, overridden by `LANDFALL_*` environment
//! variables (read through the `config` crate).
//!
//! Environment names: `LANDFALL_` followed by the key in upper case, e.g. `LANDFALL_LOG_LEVEL`,
//! `LANDFALL_SHUTDOWN_DEADLINE`. Keys are flat and contain single
//! underscores, so the nesting separator is a double underscore (`__`), reserved for nested
//! sections should they ever appear. A `LANDFALL_*` variable that matches no key is an error
//! (a typo must not be ignored), except the ones listed in [`NON_CONFIG_ENV`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::units::HumanDuration;

/// `LANDFALL_*` variables that are not daemon settings: the command line's, the lab's
/// (`LANDFALL_LAB`, exported by `eval "$(./bootstrap.sh env)"`) and the tests'.
pub const NON_CONFIG_ENV: &[&str] = &["LANDFALL_CONFIG", "LANDFALL_LAB", "LANDFALL_TEST_HDFS_URL"];

/// Settings of the daemon process, shared by all pipelines.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Log filter in `tracing` `EnvFilter` syntax: `info`, or per target such as
    /// `info,landfall=debug,rdkafka=warn`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// `text` for people, `json` (one object per line) for log shippers.
    #[serde(default = "default_log_format")]
    pub log_format: LogFormat,
    /// Directory of pipeline files (`*.yaml`, `*.yml`); relative to the working directory.
    #[serde(default = "default_pipelines_dir")]
    pub pipelines_dir: PathBuf,
    /// How long a stop (SIGTERM, SIGINT) may take. The daemon publishes what it buffered,
    /// retrying a failing store until a quarter of this (at most 2 s) before the end, and exits
    /// at the end whatever still hangs (exit code 1). Unpublished data is re-read from the
    /// source at the next start: nothing lost or doubled. Keep it below systemd's
    /// `TimeoutStopSec`.
    #[serde(default = "default_shutdown_deadline")]
    pub shutdown_deadline: HumanDuration,
    /// Address of the HTTP server (`/metrics`, `/health`, `/ready`, the status page at `/`):
    /// `host:port`; port `0` picks a free port and logs it (several instances on one host);
    /// `off` serves nothing. A port that is taken stops the daemon at start, naming it.
    #[serde(default = "default_http_listen")]
    pub http_listen: HttpListen,
}

/// Port 9464 (the lab VM forwards it); loopback only, so nothing is exposed beyond the host
/// unless asked for (`0.0.0.0:9464`).
fn default_http_listen() -> HttpListen {
    HttpListen::At(std::net::SocketAddr::from(([127, 0, 0, 1], 9464)))
}

/// Where the HTTP server listens, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum HttpListen {
    Off,
    At(std::net::SocketAddr),
}

impl TryFrom<String> for HttpListen {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.trim().eq_ignore_ascii_case("off") {
            return Ok(HttpListen::Off);
        }
        value.trim().parse().map(HttpListen::At).map_err(|_| {
            format!("http_listen: `{value}` is not `host:port` with a numeric IP (e.g. `127.0.0.1:9464`, `0.0.0.0:9464`, `127.0.0.1:0`) or `off`")
        })
    }
}

impl std::fmt::Display for HttpListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpListen::Off => f.write_str("off"),
            HttpListen::At(addr) => write!(f, "{addr}"),
        }
    }
}

/// `info`: the level `tracing-subscriber`'s `fmt()` uses when nothing is configured.
fn default_log_level() -> String {
    "info".into()
}

fn default_log_format() -> LogFormat {
    LogFormat::Text
}

fn default_pipelines_dir() -> PathBuf {
    PathBuf::from("pipelines")
}

/// 30 s mirrors Kubernetes' default `terminationGracePeriodSeconds`, so a pod finishes cleanly
/// before it is killed.
fn default_shutdown_deadline() -> HumanDuration {
    HumanDuration::from_secs(30)
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            log_level: default_log_level(),
            log_format: default_log_format(),
            pipelines_dir: default_pipelines_dir(),
            shutdown_deadline: default_shutdown_deadline(),
            http_listen: default_http_listen(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// Why the daemon settings could not be loaded; always the user's to fix.
#[derive(Debug, thiserror::Error)]
pub enum DaemonConfigError {
    #[error("daemon config {}: {source}; check the keys and values against config/landfall.yaml and the LANDFALL_* variables", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: config::ConfigError,
    },
    #[error("daemon config {}: {key}: {message}", path.display())]
    Check { path: PathBuf, key: &'static str, message: String },
}

/// Loads `path` (if given; it must then exist) and applies `LANDFALL_*` overrides from the
/// process environment.
pub fn load_daemon_config(path: Option<&Path>) -> Result<DaemonConfig, DaemonConfigError> {
    load_daemon_config_with_env(path, std::env::vars())
}

/// Like [`load_daemon_config`] with an explicit environment, so tests need not mutate the
/// process environment.
pub fn load_daemon_config_with_env(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<DaemonConfig, DaemonConfigError> {
    let label = path.map_or_else(|| PathBuf::from("(defaults)"), Path::to_path_buf);
    let env: config::Map<String, String> =
        env.into_iter().filter(|(k, _)| k.starts_with("LANDFALL_") && !NON_CONFIG_ENV.contains(&k.as_str())).collect();
    let mut builder = config::Config::builder();
    if let Some(path) = path {
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Yaml).required(true));
    }
    builder = builder.add_source(
        config::Environment::with_prefix("LANDFALL").prefix_separator("_").separator("__").source(Some(env)),
    );
    let invalid = |source| DaemonConfigError::Invalid { path: label.clone(), source };
    let daemon: DaemonConfig = builder.build().map_err(invalid)?.try_deserialize().map_err(invalid)?;

    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&daemon.log_level) {
        return Err(DaemonConfigError::Check {
            path: label,
            key: "log_level",
            message: format!(
                "`{}` is not a valid log filter ({e}); use e.g. `info` or `info,landfall=debug`",
                daemon.log_level
            ),
        });
    }
    if daemon.shutdown_deadline.get().is_zero() {
        return Err(DaemonConfigError::Check {
            path: label,
            key: "shutdown_deadline",
            message: "must be greater than 0, e.g. `30s`".into(),
        });
    }
    Ok(daemon)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/landfall.yaml")
    }

    #[test]
    fn shipped_file_lists_the_defaults() {
        let loaded = load_daemon_config_with_env(Some(&shipped()), env(&[])).unwrap();
        assert_eq!(loaded, DaemonConfig::default());
    }

    #[test]
    fn environment_overrides_the_file() {
        let loaded = load_daemon_config_with_env(
            Some(&shipped()),
            env(&[
                ("LANDFALL_LOG_LEVEL", "debug,rdkafka=warn"),
                ("LANDFALL_LOG_FORMAT", "json"),
                ("LANDFALL_SHUTDOWN_DEADLINE", "45s"),
                ("LANDFALL_HTTP_LISTEN", "127.0.0.1:0"),
                ("LANDFALL_CONFIG", "ignored.yaml"),
                ("LANDFALL_LAB", "/work/.lab"),
                ("LANDFALL_TEST_HDFS_URL", "hdfs://127.0.0.1:9000"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.log_level, "debug,rdkafka=warn");
        assert_eq!(loaded.log_format, LogFormat::Json);
        assert_eq!(loaded.shutdown_deadline.get(), Duration::from_secs(45));
        assert_eq!(loaded.http_listen, HttpListen::At("127.0.0.1:0".parse().unwrap()));
        assert_eq!(loaded.pipelines_dir, PathBuf::from("pipelines"));
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let loaded = load_daemon_config_with_env(None, env(&[("LANDFALL_PIPELINES_DIR", "/etc/landfall/p")])).unwrap();
        assert_eq!(loaded.pipelines_dir, PathBuf::from("/etc/landfall/p"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let err = load_daemon_config_with_env(None, env(&[("LANDFALL_LOG_LEVL", "info")])).unwrap_err();
        assert!(err.to_string().contains("log_levl"), "{err}");
        let err = load_daemon_config_with_env(None, env(&[("LANDFALL_SHUTDOWN_DEADLINE", "soon")])).unwrap_err();
        assert!(err.to_string().contains("shutdown_deadline"), "{err}");
        let err = load_daemon_config_with_env(None, env(&[("LANDFALL_LOG_LEVEL", "info,=[")])).unwrap_err();
        assert!(matches!(err, DaemonConfigError::Check { key: "log_level", .. }), "{err}");
        let err = load_daemon_config_with_env(None, env(&[("LANDFALL_HTTP_LISTEN", "localhost:80")])).unwrap_err();
        assert!(err.to_string().contains("http_listen"), "{err}");
        let off = load_daemon_config_with_env(None, env(&[("LANDFALL_HTTP_LISTEN", "off")])).unwrap();
        assert_eq!(off.http_listen, HttpListen::Off);
        let err = load_daemon_config_with_env(None, env(&[("LANDFALL_SHUTDOWN_DEADLINE", "30")])).unwrap_err();
        assert!(err.to_string().contains("has no unit") || err.to_string().contains("with a unit"), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = load_daemon_config_with_env(Some(Path::new("/nonexistent/landfall.yaml")), env(&[])).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/landfall.yaml"), "{err}");
    }
}
