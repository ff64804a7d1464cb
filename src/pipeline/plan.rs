//! The resolved pipeline: what a run needs from the config, parsed and checked once when the
//! pipeline is loaded (ripgrep's LowArgs → HiArgs). Restarts of a failed pipeline reuse it;
//! nothing at run time re-parses the config.

use parquet::file::properties::WriterProperties;

use super::driver::Limits;
use super::partitions::RollPolicy;
use crate::commit::CommitConfig;
use crate::config::{DecodeConfig, PipelineConfig, SourceConfig};
use crate::partition::PartitionTemplate;
use crate::schema::FieldSpec;

/// One pipeline, ready to run.
pub struct Plan {
    pub cfg: PipelineConfig,
    pub schema: Vec<FieldSpec>,
    pub template: PartitionTemplate,
    pub tz: chrono_tz::Tz,
    /// `decode.json.strict`: unknown fields are rejected.
    pub strict: bool,
    pub policy: RollPolicy,
    pub limits: Limits,
    /// The commit log's settings: a queue keeps the manifests covering its deduplication window.
    pub commit: CommitConfig,
    pub parquet: WriterProperties,
    /// Published file suffix, e.g. `zstd.parquet`.
    pub ext: String,
    /// `partition.completion`: the template's clock, whose buckets complete.
    pub clock: Option<crate::partition::clock::Clock>,
}

impl Plan {
    /// Parses the partition template, time zone and Parquet settings. The loader has checked
    /// them already, so an error here names a bug in that check.
    pub fn resolve(cfg: PipelineConfig) -> Result<Plan, String> {
        let schema = cfg.schema().to_vec();
        let template = PartitionTemplate::parse(&cfg.partition.path, &schema)
            .map_err(|p| format!("partition.path: {}", p.join("; ")))?;
        let tz: chrono_tz::Tz = cfg
            .partition
            .timezone
            .parse()
            .map_err(|e| format!("partition.timezone {}: {e}", cfg.partition.timezone))?;
        let clock = match &cfg.partition.completion {
            Some(_) => Some(
                crate::partition::clock::Clock::resolve(&template, tz)
                    .map_err(|p| format!("partition.path: {}", p.join("; ")))?,
            ),
            None => None,
        };
        let DecodeConfig::Json(json) = &cfg.decode;
        let keep_ids = match &cfg.source {
            SourceConfig::RabbitMq(r) if !r.is_stream() => r.dedup_window,
            _ => 0,
        };
        let parquet = crate::parquet::writer_properties(
            cfg.parquet.codec()?,
            cfg.parquet.row_group_rows,
            vec![("landfall.pipeline".to_string(), cfg.name.clone())],
        )
        .map_err(|e| e.to_string())?;
        Ok(Plan {
            strict: json.strict,
            policy: RollPolicy::of(&cfg.roll),
            limits: Limits {
                max_open_files: cfg.roll.max_open_files,
                max_buffered_bytes: cfg.roll.max_buffered_bytes.bytes() as usize,
            },
            commit: CommitConfig {
                keep_ids,
                quarantine_mode: cfg.quarantine.permissions.0,
                grace: cfg.staging.grace.get(),
                record_event_time: clock.is_some(),
                ..CommitConfig::default()
            },
            ext: format!("{}.parquet", cfg.parquet.compression.name()),
            parquet,
            schema,
            template,
            tz,
            clock,
            cfg,
        })
    }
}
