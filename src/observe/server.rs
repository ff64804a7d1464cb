//! The HTTP server on `http_listen`: `/metrics` (Prometheus), `/health` (liveness), `/ready`
//! (readiness), `/api/status` (JSON for the page and `landfall status`) and `/` (the page).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::watch::Observer;
use crate::shutdown::Shutdown;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[error("http_listen {addr}: cannot listen ({source}); is another landfall (or something else) using that port? Set http_listen to a free port, `127.0.0.1:0` for any free port, or `off`")]
pub struct ServeError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// Binds `addr` (port 0: any free port), logs the address it got, and serves until shutdown
/// is requested. Returns the bound address once listening.
pub async fn start(
    addr: SocketAddr,
    observer: Arc<Observer>,
    shutdown: Shutdown,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError { addr, source })?;
    let bound = listener.local_addr().map_err(|source| ServeError { addr, source })?;
    tracing::info!(addr = %bound, "status server listening (/metrics, /health, /ready, /api/status, /)");
    let app = router(observer);
    let task = tokio::spawn(async move {
        let stop = async move { shutdown.wait().await };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
            tracing::error!(error = %e, "status server stopped");
        }
    });
    Ok((bound, task))
}

fn router(observer: Arc<Observer>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/status", get(status))
        .with_state(observer)
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn metrics(State(observer): State<Arc<Observer>>) -> Response {
    let (content_type, body) = observer.metrics.encode();
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn status(State(observer): State<Arc<Observer>>) -> Response {
    Json(observer.status()).into_response()
}

/// A pipeline that fails a check, with why.
#[derive(Serialize)]
struct Failing {
    pipeline: String,
    state: super::status::PipelineState,
    problems: Vec<String>,
}

#[derive(Serialize)]
struct CheckBody {
    status: &'static str,
    pipelines: Vec<Failing>,
}

fn check(ok: bool, failing: Vec<Failing>, bad: &'static str) -> Response {
    let (code, status) = if ok { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, bad) };
    (code, Json(CheckBody { status, pipelines: failing })).into_response()
}

/// Liveness: 200 unless a pipeline is stuck (lag and no commit for too long).
async fn health(State(observer): State<Arc<Observer>>) -> Response {
    let s = observer.status();
    let failing = s
        .pipelines
        .into_iter()
        .filter(|p| p.stuck)
        .map(|p| Failing { pipeline: p.name, state: p.state, problems: p.problems })
        .collect();
    check(s.healthy, failing, "stuck")
}

/// Readiness: 200 when every pipeline is running and reaches its source and store.
async fn ready(State(observer): State<Arc<Observer>>) -> Response {
    let s = observer.status();
    let failing = s
        .pipelines
        .into_iter()
        .filter(|p| !p.ready)
        .map(|p| Failing { pipeline: p.name, state: p.state, problems: p.problems })
        .collect();
    check(s.ready, failing, "not_ready")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::status::PipelineState;
    use crate::observe::watch::ProblemKey;
    use std::time::Duration;

    fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut resp = agent.get(&format!("http://{addr}{path}")).call().expect("request");
        let code = resp.status().as_u16();
        (code, resp.body_mut().read_to_string().expect("body"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn endpoints_answer_with_codes_and_bodies_that_name_the_pipeline() {
        let observer = Observer::new();
        let w = observer.pipeline("orders", "RabbitMQ", "/tmp/orders", Duration::from_secs(120));
        w.set_state(PipelineState::Running);
        let shutdown = Shutdown::default();
        let (addr, task) = start("127.0.0.1:0".parse().unwrap(), observer.clone(), shutdown.clone()).await.unwrap();
        let result = tokio::task::spawn_blocking(move || {
            assert_eq!(get(addr, "/ready").0, 200);
            w.problem(ProblemKey::Store, Some("store: hdfs://nn did not answer within 5 s".into()));
            let (code, body) = get(addr, "/ready");
            assert_eq!(code, 503);
            assert!(body.contains("orders") && body.contains("did not answer"), "{body}");
            assert_eq!(get(addr, "/health").0, 200, "not ready is not stuck");
            let (code, body) = get(addr, "/metrics");
            assert_eq!(code, 200);
            assert!(body.contains(r#"landfall_pipeline_up{pipeline="orders"} 0"#), "{body}");
            let (code, body) = get(addr, "/api/status");
            assert_eq!(code, 200);
            let parsed: crate::observe::status::DaemonStatus = serde_json::from_str(&body).unwrap();
            assert_eq!(parsed.pipelines[0].name, "orders");
            assert!(get(addr, "/").1.contains("<html"));
        })
        .await;
        shutdown.request();
        let _ = task.await;
        result.unwrap();
    }

    #[tokio::test]
    async fn a_taken_port_is_named_with_what_to_do() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = start(addr, Observer::new(), Shutdown::default()).await.unwrap_err();
        assert!(err.to_string().contains("127.0.0.1:0") && err.to_string().contains(&addr.to_string()), "{err}");
    }
}
