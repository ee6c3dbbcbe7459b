//! Local HTTP endpoint for orchestrators and Prometheus: `/healthz`, `/readyz`, `/status`, `/metrics`.
//! Bind it to localhost (the default); it exposes no secrets but does reveal the node's role.

use crate::telemetry::Telemetry;
use http_body_util::Full;
use hyper::{body::Bytes, server::conn::http1, service::service_fn, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use replicatoor_chain::Backoff;
use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

/// /healthz fails when the main loop made no progress for this long.
const STALL_SECONDS: u64 = 120;

const ACCEPT_RETRY_BASE: Duration = Duration::from_millis(100);
const ACCEPT_RETRY_CAP: Duration = Duration::from_secs(2);

/// Bind and serve in the background; returns the bound address (useful with port 0).
pub async fn serve(addr: SocketAddr, telemetry: Arc<Telemetry>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    info!(target: "replicatoor::http", addr = %local, "health and metrics endpoint listening");
    tokio::spawn(async move {
        // Accept fails when the process is out of file descriptors: wait for some to close, and
        // do not log ten warnings a second while it lasts.
        let mut backoff = Backoff::new(ACCEPT_RETRY_BASE, ACCEPT_RETRY_CAP);
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(v) => v,
                Err(e) => {
                    let delay = backoff.next_delay();
                    warn!(target: "replicatoor::http", error = %e, retry_in_ms = delay.as_millis() as u64, "accept failed");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            backoff.reset();
            let t = telemetry.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let t = t.clone();
                    async move { Ok::<_, Infallible>(route(&req, &t)) }
                });
                let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                if let Err(e) = tokio::time::timeout(Duration::from_secs(30), conn).await {
                    debug!(target: "replicatoor::http", %peer, error = %e, "connection timed out");
                }
            });
        }
    });
    Ok(local)
}

fn route<B>(req: &Request<B>, t: &Telemetry) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz" => {
            let idle = t.idle_seconds();
            if idle <= STALL_SECONDS {
                text(StatusCode::OK, "ok\n".into())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, format!("main loop stalled for {idle} s\n"))
            }
        }
        "/readyz" => match t.status() {
            Some(s) if s.secret_installed => text(StatusCode::OK, "ready: secret installed\n".into()),
            Some(s) => {
                text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {:?}, secret not installed\n", s.role))
            }
            None => text(StatusCode::INTERNAL_SERVER_ERROR, "status unavailable\n".into()),
        },
        "/status" => match t.status().and_then(|s| serde_json::to_string_pretty(&s).ok()) {
            Some(body) => respond(StatusCode::OK, "application/json", body),
            None => text(StatusCode::INTERNAL_SERVER_ERROR, "status unavailable\n".into()),
        },
        "/metrics" => respond(StatusCode::OK, "text/plain; version=0.0.4", t.render()),
        _ => text(StatusCode::NOT_FOUND, "not found: try /healthz, /readyz, /status, /metrics\n".into()),
    }
}

fn text(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    respond(code, "text/plain; charset=utf-8", body)
}

fn respond(code: StatusCode, ctype: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    if let Ok(v) = ctype.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}
