//! Configuration: pipeline files (`pipelines/*.yaml`) and the daemon's own settings
//! (`config/landfall.yaml`).
//!
//! Checking happens in layers, and every layer reports *all* its problems as
//! `file:line:column: key.path: message` (see [`ConfigErrors`]):
//!
//! - **parse**: YAML syntax, unknown keys (with a "did you mean"), wrong types, missing keys,
//!   bad enum values, missing `${VAR}`s ([`load`]);
//! - **semantic**, pure: partition template against the schema, names, limits, codec levels,
//!   time zone ([`validate`]); a setting that works but not the way it reads is a warning
//!   ([`ConfigWarning`]), not an error;
//! - a live probe (`--connect`) belongs to the connectors, not here.
//!
//! Module map: [`pipeline`], [`source`] (one file per source) and [`sink`] are the serde
//! structs (their `///` comments are the user documentation) with their checks, [`units`]
//! sizes and durations, [`options`] pass-through client settings, [`secret`] redaction,
//! [`env`] interpolation, [`yaml`] the position-aware tree, [`shape`] the key sets read from
//! serde, [`daemon`] the daemon settings. Nothing here depends on the runtime (`source/`,
//! `pipeline/` at the crate root): the runtime depends on this.

pub mod daemon;
pub mod env;
pub mod errors;
mod load;
pub mod options;
pub mod pipeline;
pub mod secret;
mod shape;
pub mod sink;
pub mod source;
pub mod units;
pub mod validate;
mod yaml;

/// The RabbitMQ source's settings, under the path the runtime has always used
/// (`config::rabbitmq::RabbitMqSourceConfig`); they live in [`source::rabbitmq`].
pub use source::rabbitmq;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use daemon::{load_daemon_config, DaemonConfig, DaemonConfigError, HttpListen, LogFormat};
pub use errors::{ConfigError, ConfigErrors, ConfigWarning};
pub use options::ClientOptions;
pub use pipeline::{
    CompletionConfig, Compression, DecodeConfig, FileMode, JsonDecodeConfig, ParquetConfig, PartitionConfig,
    PipelineConfig, QuarantineConfig, RollConfig, StagingConfig,
};
pub use secret::{is_secret_key, redact_uri, Redactor, Secret};
pub use sink::{CompactionConfig, HdfsSinkConfig, HiveConfig, LocalSinkConfig, SinkConfig, StoreConfig};
pub use source::{
    KafkaSourceConfig, OnPositionLost, QueueType, RabbitMqSourceConfig, SourceConfig, StartPosition,
    MANAGED_KAFKA_OPTIONS,
};
pub use units::{ByteSize, HumanDuration};

/// Reads, interpolates, parses and checks one pipeline file. `Err` holds every problem found.
/// Its warnings are dropped: use [`load_pipelines`] to see them.
pub fn load_pipeline(path: &Path) -> Result<PipelineConfig, ConfigErrors> {
    let (config, _) = load_one(path).0?;
    Ok(config)
}

/// Parses pipeline text as if read from `file` (used by tests and `validate -`), with
/// `${VAR}`s looked up through `env`. Warnings are dropped: [`load_pipelines`] returns them.
pub fn parse_pipeline(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PipelineConfig, ConfigErrors> {
    let parsed = load::parse_pipeline_text(text, file, env, validate::partition_template);
    match parsed.config {
        Some(config) if parsed.errors.is_empty() => Ok(config),
        _ => Err(parsed.errors),
    }
}

/// What [`load_pipelines`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The valid pipelines, with the file each came from.
    pub pipelines: Vec<(PathBuf, PipelineConfig)>,
    /// Every problem found; a file with one is not in `pipelines`.
    pub errors: ConfigErrors,
    /// Settings that work but not the way they read, in every file that parsed: print them
    /// (`validate`) or log them (`run`); they do not stop a pipeline.
    pub warnings: Vec<ConfigWarning>,
}

/// Loads many pipelines: each path is a file, or a directory whose `*.yaml`/`*.yml` files are
/// read in name order. Returns the pipelines that are valid, every problem found (including a
/// pipeline `name` used by two files: the second is rejected) and every warning.
pub fn load_pipelines(paths: &[PathBuf]) -> Loaded {
    let mut errors = ConfigErrors::default();
    let mut warnings = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        match pipeline_files(path) {
            Ok(found) => files.extend(found),
            Err(error) => errors.push(error),
        }
    }
    let mut loaded = Vec::new();
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        let (result, file_warnings) = load_one(&file);
        warnings.extend(file_warnings);
        match result {
            Ok((config, name_pos)) => {
                if let Some(first) = names.get(&config.name) {
                    errors.push(ConfigError {
                        file: file.clone(),
                        line: name_pos.line,
                        column: name_pos.column,
                        key_path: "name".into(),
                        message: format!(
                            "pipeline name `{}` is already used by {}; names must be unique (they name paths, offsets and metrics)",
                            config.name,
                            first.display()
                        ),
                    });
                } else {
                    names.insert(config.name.clone(), file.clone());
                    loaded.push((file, config));
                }
            }
            Err(file_errors) => errors.extend(file_errors),
        }
    }
    Loaded { pipelines: loaded, errors, warnings }
}

/// The config and the position of its `name` value, and the file's warnings.
#[allow(clippy::type_complexity)]
fn load_one(path: &Path) -> (Result<(PipelineConfig, yaml::Pos), ConfigErrors>, Vec<ConfigWarning>) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            let error = ConfigError {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                key_path: String::new(),
                message: format!("cannot read pipeline file: {e}; check the path and permissions"),
            };
            return (Err(ConfigErrors(vec![error])), Vec::new());
        }
    };
    let env = |name: &str| std::env::var(name).ok();
    let parsed = load::parse_pipeline_text(&text, path, &env, validate::partition_template);
    let result = match (parsed.config, parsed.tree) {
        (Some(config), Some(tree)) if parsed.errors.is_empty() => {
            let pos = tree.locate(&[yaml::Seg::Key("name".into())]);
            Ok((config, pos))
        }
        _ => Err(parsed.errors),
    };
    (result, parsed.warnings)
}

fn pipeline_files(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let error = |message: String| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        key_path: String::new(),
        message,
    };
    let metadata =
        std::fs::metadata(path).map_err(|e| error(format!("cannot read pipeline path: {e}; check that it exists")))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| error(format!("cannot list pipeline directory: {e}")))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(error("no *.yaml or *.yml pipeline files in this directory".into()));
    }
    Ok(files)
}

#[cfg(test)]
mod tests;
