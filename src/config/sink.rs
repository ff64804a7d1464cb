//! Where a pipeline lands its files: [`SinkConfig`], one file store chosen by key
//! (`sink: { hdfs: {...} }`, [`StoreConfig`]) and, beside it, the optional Hive Metastore table
//! the files are registered in (`sink: { hdfs: {...}, hive: {...} }`, [`HiveConfig`]), with
//! their offline checks.
//!
//! Inside `config`, the stores are listed only here (the enum, [`check`] and
//! [`SinkConfig::mark_secrets`]); the runtime opens them in `pipeline::open_store`, on top of
//! `src/sink/`, and registers tables in `src/metastore/`.

use std::fmt;

use serde::Deserialize;
use url::Url;

use super::options::ClientOptions;
use super::secret::{redact_uri, Redactor};
use super::units::{ByteSize, HumanDuration};
use super::validate::{at, Findings};

/// Where finished Parquet files are published, and where the table is registered.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "SinkKeys")]
pub struct SinkConfig {
    /// The file store (`hdfs` or `local`).
    pub store: StoreConfig,
    /// The Hive Metastore table, when `hive` is set.
    pub hive: Option<HiveConfig>,
}

/// The keys of `sink:` as written. The store is chosen by key, like a connector; `hive` sits
/// beside it because it describes the table, not the store. [`SinkConfig`] is what they mean:
/// exactly one store, checked when converting.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `hdfs` or `local` (and optionally `hive`) and its settings below it"
)]
struct SinkKeys {
    /// An HDFS directory written with the native client (no JVM).
    #[serde(default)]
    hdfs: Option<HdfsSinkConfig>,
    /// A directory on the local filesystem (tests, or an NFS/fuse mount).
    #[serde(default)]
    local: Option<LocalSinkConfig>,
    /// Register the table and each new partition in a Hive Metastore, so that
    /// `spark.table("landing.clicks")` (Hive, Trino, Impala) sees what lands without
    /// `MSCK REPAIR TABLE`. Needs the `hdfs` store: a metastore's readers cannot read a
    /// directory on this machine.
    #[serde(default)]
    hive: Option<HiveConfig>,
}

impl TryFrom<SinkKeys> for SinkConfig {
    type Error = String;

    fn try_from(keys: SinkKeys) -> Result<SinkConfig, String> {
        let store = match (keys.hdfs, keys.local) {
            (Some(hdfs), None) => StoreConfig::Hdfs(hdfs),
            (None, Some(local)) => StoreConfig::Local(local),
            (Some(_), Some(_)) => return Err("choose exactly one of `hdfs`, `local`, found `hdfs`, `local`".into()),
            (None, None) => return Err("choose exactly one of `hdfs`, `local`, found none".into()),
        };
        Ok(SinkConfig { store, hive: keys.hive })
    }
}

/// The file store finished files are published to.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreConfig {
    Hdfs(HdfsSinkConfig),
    Local(LocalSinkConfig),
}

/// The Hive Metastore table a pipeline registers (HDFS sinks only). On start the database and
/// the external Parquet table are created from the declared schema and the partition template,
/// or an existing table is checked against them: one that lacks only nullable fields the schema
/// appends gains them as columns (older rows read null), and any other difference stops the
/// pipeline, each difference named (docs/hive.md). Each Hive partition is added the first time
/// a commit publishes into it. A metastore that is down delays registration, never landing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HiveConfig {
    /// The metastore's Thrift URI, `thrift://HOST:PORT` (port 9083 when omitted); the binary
    /// protocol without SASL/Kerberos, as a metastore without Kerberos serves it.
    pub metastore: String,
    /// Database, created (in the metastore's warehouse) if missing: `[a-z0-9_]`, as Hive
    /// stores names in lower case.
    pub database: String,
    /// Table, created as an external Parquet table at `sink.hdfs.path` if missing:
    /// `[a-z0-9_]`. The partition template must then be Hive-style, every directory
    /// `key=value` (`dt={ts:%Y-%m-%d}/hour={ts:%H}`): its keys become the partition columns.
    pub table: String,
    /// Compaction of completed partitions (absent: off). Needs `partition.completion`.
    #[serde(default)]
    pub compaction: Option<CompactionConfig>,
}

/// `sink.hive.compaction`: once a partition is complete (`partition.completion`) and holds
/// `min_files` files, the completer rewrites them into files of about `target_file_size` in a
/// new directory under `_landfall/generations/` and points the metastore partition there in one
/// call, so readers by table name see all old files or all new ones. Rows that land later are
/// rewritten with the generation at the next round. Readers of the table's paths (not through
/// the metastore) lose the compacted files after `grace`: read a compacted table by name
/// (docs/hive.md, "Compaction").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactionConfig {
    /// Compact a complete partition once it holds this many data files (default 10, at
    /// least 2).
    #[serde(default = "default_min_files")]
    pub min_files: usize,
    /// Output files are closed once their estimated size reaches this (default `128MiB`, what
    /// Spark reads in one task by default).
    #[serde(default = "default_target_file_size")]
    pub target_file_size: ByteSize,
    /// How long the compacted files stay after the switch (default `1h`; under `10m` is
    /// warned about): a query planned on the old location must still find them.
    #[serde(default = "default_grace")]
    pub grace: HumanDuration,
}

/// Ten files: below that, a partition costs Spark little more than one file would.
fn default_min_files() -> usize {
    10
}

/// 128 MiB: `spark.sql.files.maxPartitionBytes`' default.
fn default_target_file_size() -> ByteSize {
    ByteSize(128 << 20)
}

/// An hour: far longer than a query over one partition, and than a metastore call's timeout.
fn default_grace() -> HumanDuration {
    HumanDuration::from_secs(3600)
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
        match &self.store {
            StoreConfig::Hdfs(h) => format!("{}{}", redact_uri(h.url.trim_end_matches('/')), h.path),
            StoreConfig::Local(l) => l.path.clone(),
        }
    }

    /// Marks client option values that came from secret environment variables, so they print
    /// as `***`.
    pub(crate) fn mark_secrets(&mut self, redactor: &Redactor) {
        match &mut self.store {
            StoreConfig::Hdfs(hdfs) => hdfs.options.mark_secrets(redactor),
            StoreConfig::Local(_) => {}
        }
    }
}

/// Offline checks of the sink section.
pub(crate) fn check(sink: &SinkConfig, out: &mut Findings) {
    match &sink.store {
        StoreConfig::Hdfs(hdfs) => {
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
        StoreConfig::Local(local) => {
            if local.path.trim().is_empty() {
                out.error(at(&["sink", "local", "path"]), "path must not be empty".into());
            }
        }
    }
    if let Some(hive) = &sink.hive {
        check_hive(hive, &sink.store, out);
    }
}

/// The `sink.hive` checks that need nothing but the section itself (the partition template's
/// keys are checked with the partition section, in `validate`).
fn check_hive(hive: &HiveConfig, store: &StoreConfig, out: &mut Findings) {
    if let StoreConfig::Local(_) = store {
        out.error(
            at(&["sink", "hive"]),
            "a Hive Metastore table needs an HDFS sink: the metastore's readers (Spark, Hive, Trino) cannot read \
             a directory on this machine; use `sink.hdfs` or remove `hive`"
                .into(),
        );
    }
    if let Err(why) = crate::metastore::parse_uri(&hive.metastore) {
        out.error(at(&["sink", "hive", "metastore"]), why);
    }
    for (key, name) in [("database", &hive.database), ("table", &hive.table)] {
        if let Some(why) = hive_name_problem(name) {
            out.error(at(&["sink", "hive", key]), format!("{key} `{name}` {why}"));
        }
    }
    if let Some(compaction) = &hive.compaction {
        let key = |name: &str| at(&["sink", "hive", "compaction", name]);
        if compaction.min_files < 2 {
            out.error(key("min_files"), format!("min_files must be at least 2 (got {})", compaction.min_files));
        }
        if compaction.grace.get() < std::time::Duration::from_secs(600) {
            out.warn(
                key("grace"),
                format!(
                    "grace is {}, under 10m: a query planned on a partition's old files before a switch fails if it \
                     reads them after the grace, when they are deleted; fine where no query runs that long (the \
                     default is 1h; 10m or more silences this)",
                    compaction.grace
                ),
            );
        }
        if compaction.target_file_size.bytes() < (1 << 20) {
            out.error(key("target_file_size"), "target_file_size must be at least 1MiB, e.g. `128MiB`".into());
        }
    }
}

/// Why `name` cannot be a Hive database or table name as written, or `None`. Hive keeps names
/// in lower case and accepts letters, digits and `_`; an upper-case name would be found under
/// another spelling than the one written, so it is refused with the lower-case one suggested.
pub fn hive_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("must not be empty".into())
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Some("may only use a-z, 0-9 and `_` (Hive's identifier characters)".into())
    } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(format!("must be lower case, as Hive stores it: write `{}`", name.to_ascii_lowercase()))
    } else if name.len() > 128 {
        Some("is longer than 128 characters, the metastore's limit".into())
    } else {
        None
    }
}
