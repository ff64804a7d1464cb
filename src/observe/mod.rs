//! Watching the daemon run: Prometheus metrics, liveness and readiness, the live status page
//! and `landfall status`, all served on `http_listen`.

pub mod client;
pub mod status;
