//! Where a pipeline lands its files: [`SinkConfig`], one variant per file store, chosen by key
//! (`sink: { hdfs: {...} }`), with each store's settings and their offline checks.
//!
//! Inside `config`, the stores are listed only here (the enum, [`check`] and
//! [`SinkConfig::mark_secrets`]); the runtime opens them in `pipeline::open_store`, on top of
//! `src/sink/`.

use std::fmt;

use serde::Deserialize;
use url::Url;

use super::options::ClientOptions;
use super::secret::{redact_uri, Redactor};
use super::validate::{at, Findings};

/// Where finished Parquet files are published.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    Hdfs(HdfsSinkConfig),
    Local(LocalSinkConfig),
}

/// An HDFS directory written with the native client (no JVM).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HdfsSinkConfig {
    /// NameNode or nameservice URL, e.g. `hdfs://127.0.0.1:9000` or `hdfs://ns1` with HA
    /// settings in `options`; userinfo in it is hidden when printed.
    pub url: String,
    /// Absolute table root inside HDFS; partitions and files go below it.
    pub path: String,
    /// User to act as (simple auth); defaults to the client's own rules (`HADOOP_USER_NAME`,
    /// then the OS user).
    #[serde(default)]
    pub user: Option<String>,
    /// Extra Hadoop client settings, passed to the HDFS client over those from
    /// `HADOOP_CONF_DIR`: e.g. for an HA nameservice `hdfs://ns1`, `dfs.ha.namenodes.ns1: nn1,nn2`
    /// and `dfs.namenode.rpc-address.ns1.nn1: host1:8020`. Secret values are hidden when printed.
    #[serde(default)]
    pub options: ClientOptions,
}

impl fmt::Debug for HdfsSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HdfsSinkConfig")
            .field("url", &redact_uri(&self.url))
            .field("path", &self.path)
            .field("user", &self.user)
            .field("options", &self.options)
            .finish()
    }
}

/// A directory on the local filesystem (tests, or an NFS/fuse mount).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSinkConfig {
    /// Table root; relative paths are relative to the daemon's working directory.
    pub path: String,
}

impl SinkConfig {
    /// The table's root as people write it: `hdfs://host:port/path` (credentials redacted) or
    /// the local path.
    pub fn describe(&self) -> String {
        match self {
            SinkConfig::Hdfs(h) => format!("{}{}", redact_uri(h.url.trim_end_matches('/')), h.path),
            SinkConfig::Local(l) => l.path.clone(),
        }
    }

    /// Marks client option values that came from secret environment variables, so they print
    /// as `***`.
    pub(crate) fn mark_secrets(&mut self, redactor: &Redactor) {
        match self {
            SinkConfig::Hdfs(hdfs) => hdfs.options.mark_secrets(redactor),
            SinkConfig::Local(_) => {}
        }
    }
}

/// Offline checks of the sink section.
pub(crate) fn check(sink: &SinkConfig, out: &mut Findings) {
    match sink {
        SinkConfig::Hdfs(hdfs) => {
            let url_path = at(&["sink", "hdfs", "url"]);
            let scheme = hdfs.url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            if !matches!(scheme.as_deref(), Some("hdfs" | "viewfs")) {
                out.error(
                    url_path,
                    format!("url `{}` must start with `hdfs://` or `viewfs://`", redact_uri(&hdfs.url)),
                );
            } else {
                // Read by the `url` crate, as the HDFS client reads it.
                match Url::parse(&hdfs.url) {
                    Ok(url) if url.host_str().is_some_and(|h| !h.is_empty()) => {}
                    Ok(_) | Err(url::ParseError::EmptyHost) => out.error(
                        url_path,
                        "url needs a NameNode `host:port` or nameservice, e.g. `hdfs://127.0.0.1:9000`".into(),
                    ),
                    Err(e) => out.error(
                        url_path,
                        format!(
                            "url `{}` is not a valid URL ({e}); write `hdfs://host:port` or `hdfs://nameservice`",
                            redact_uri(&hdfs.url)
                        ),
                    ),
                }
            }
            if !hdfs.path.starts_with('/') {
                out.error(
                    at(&["sink", "hdfs", "path"]),
                    format!("path `{}` must be absolute (start with `/`)", hdfs.path),
                );
            }
            if hdfs.user.as_deref().is_some_and(|u| u.trim().is_empty()) {
                out.error(
                    at(&["sink", "hdfs", "user"]),
                    "user must not be empty; remove the key to use the default".into(),
                );
            }
        }
        SinkConfig::Local(local) => {
            if local.path.trim().is_empty() {
                out.error(at(&["sink", "local", "path"]), "path must not be empty".into());
            }
        }
    }
}
