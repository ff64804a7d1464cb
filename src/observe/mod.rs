//! Watching the daemon run: Prometheus metrics ([`metrics`]), what each pipeline reports about
//! its health ([`watch`]: readiness, stuck detection, history), the HTTP server on
//! `http_listen` ([`server`]), the JSON contract of `/api/status` ([`status`]) and
//! `landfall status` ([`client`]). `docs/operations.md` is the operator's guide to all of it.

pub mod client;
pub mod metrics;
pub mod server;
pub mod status;
pub mod watch;

pub use metrics::ErrorKind;
pub use watch::{Observer, PipelineWatch, ProblemKey};
