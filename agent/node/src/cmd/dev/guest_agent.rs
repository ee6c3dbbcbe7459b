//! `replicatoor dev guest-agent`: a SIMULATED Dstack guest agent, so the app's compose runs on a laptop
//! without TDX: the agent's `dstack` quote provider (provider.rs) gets its quotes over the same unix
//! socket and HTTP API as in a Dstack CVM (`POST /GetQuote {"report_data": hex}`, and `/Info`), in the
//! shape of the recorded response (tests/fixtures/dstack). Each quote is a simulated TD's whose event
//! log replays to the quote's RTMR3 and names the compose hash of `--compose`, as a CVM running that
//! compose would log it. Only in builds with the `simulated` feature. Anyone can make these quotes:
//! they prove nothing about a TD.

use crate::provider::QuoteProvider;
use anyhow::Context as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Bytes, server::conn::http1, service::service_fn, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use replicatoor_core::attest::eventlog::{DigestFormat, EventLog, DSTACK_RUNTIME_EVENT_TYPE};
use sha2::{Digest, Sha256};
use std::{convert::Infallible, os::unix::fs::PermissionsExt, path::PathBuf, process::ExitCode, sync::Arc};
use tokio::net::UnixListener;
use tracing::{debug, info, warn};

/// Largest request body read (a GetQuote request is about 150 bytes).
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The unix socket to serve on (mount it at /var/run/dstack.sock in the agent's container).
    #[arg(long)]
    pub socket: PathBuf,
    /// The app-compose.json this simulated CVM runs: its sha256 is the compose hash in every quote.
    #[arg(long)]
    pub compose: PathBuf,
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(crate::simulated::BUILT, crate::simulated::NotBuilt);
    let compose = std::fs::read(&a.compose).with_context(|| format!("reading {}", a.compose.display()))?;
    let compose_hash: [u8; 32] = Sha256::digest(&compose).into();
    // Info hands the document out as a string, verbatim: its bytes are what the compose hash covers.
    let compose = String::from_utf8(compose).with_context(|| format!("{} is not UTF-8", a.compose.display()))?;
    let td = Arc::new((crate::simulated::quote_provider(compose_hash)?, compose));
    let listener = bind(&a.socket)?;
    warn!(target: "replicatoor", socket = %a.socket.display(), compose_hash = %hex::encode(compose_hash), "!!! SIMULATED GUEST AGENT serving simulated quotes: dev only, they prove nothing about a TD !!!");
    println!("guest agent: {} (compose hash {})", a.socket.display(), hex::encode(compose_hash));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(target: "replicatoor", error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
        };
        let td = td.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let td = td.clone();
                async move { Ok::<_, Infallible>(handle(req, &td).await) }
            });
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await {
                debug!(target: "replicatoor", error = %e, "guest agent connection");
            }
        });
    }
    let _ = std::fs::remove_file(&a.socket);
    Ok(ExitCode::SUCCESS)
}

/// Bind `path`, replacing a stale socket (never another kind of file). The socket is world-writable:
/// the agent's image runs as uid 10001, not as the socket's owner.
fn bind(path: &std::path::Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        anyhow::ensure!(meta.file_type().is_socket(), "{} exists and is not a socket", path.display());
        std::fs::remove_file(path).with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}

/// The simulated TD and the app-compose.json it runs.
type Cvm = (QuoteProvider, String);

async fn handle(req: Request<hyper::body::Incoming>, cvm: &Cvm) -> Response<Full<Bytes>> {
    let (td, compose) = cvm;
    let path = req.uri().path().to_string();
    let body = match Limited::new(req.into_body(), MAX_REQUEST).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return reply(StatusCode::BAD_REQUEST, format!("request body: {e}")),
    };
    let answer = match path.as_str() {
        "/GetQuote" => get_quote(&body, td).await,
        "/Info" => info(td, compose).await,
        _ => Err((StatusCode::NOT_FOUND, "this simulated guest agent serves /GetQuote and /Info".into())),
    };
    match answer {
        Ok(json) => {
            let mut r = reply(StatusCode::OK, json.to_string());
            r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
            r
        }
        Err((status, reason)) => reply(status, reason),
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

type Answer = Result<serde_json::Value, (StatusCode, String)>;

/// Dstack's GetQuote: `report_data` is hex of at most 64 bytes, zero-padded to 64 in the quote.
async fn get_quote(body: &[u8], td: &QuoteProvider) -> Answer {
    #[derive(serde::Deserialize)]
    struct GetQuote {
        report_data: String,
    }
    let bad = |why: String| (StatusCode::BAD_REQUEST, why);
    let req: GetQuote = serde_json::from_slice(body).map_err(|e| bad(format!("GetQuote body: {e}")))?;
    let bytes = hex::decode(req.report_data.trim_start_matches("0x")).map_err(|e| bad(format!("report_data: {e}")))?;
    if bytes.len() > 64 {
        return Err(bad(format!("report_data is {} bytes; at most 64", bytes.len())));
    }
    let mut report_data = [0u8; 64];
    report_data[..bytes.len()].copy_from_slice(&bytes);
    let (quote, log) = attest(td, report_data).await?;
    info!(target: "replicatoor", report_data = %hex::encode(report_data), "simulated quote served");
    Ok(serde_json::json!({
        "quote": hex::encode(quote),
        "event_log": dstack_json(&log),
        "report_data": hex::encode(report_data),
        "vm_config": serde_json::json!({ "simulated": true }).to_string(),
    }))
}

/// Dstack's Info: who this CVM is (from the same simulated event log a quote carries), with `tcb_info`
/// as Dstack serves it: a JSON string carrying the measurements, the event log and the app-compose
/// document verbatim (a node reads its own measured configuration from it).
async fn info(td: &QuoteProvider, compose: &str) -> Answer {
    let (quote, log) = attest(td, [0; 64]).await?;
    let failed = |e: String| (StatusCode::INTERNAL_SERVER_ERROR, e);
    let app = log.app_info().map_err(|e| failed(e.to_string()))?;
    let m = replicatoor_core::attest::quote::Measurements::parse_unverified(&quote)
        .map_err(|e| failed(e.to_string()))?
        .2
        .ok_or_else(|| failed("not a TDX quote".into()))?;
    let tcb_info = serde_json::json!({
        "mrtd": hex::encode(m.mr_td),
        "rtmr0": hex::encode(m.rtmr[0]),
        "rtmr1": hex::encode(m.rtmr[1]),
        "rtmr2": hex::encode(m.rtmr[2]),
        "rtmr3": hex::encode(m.rtmr[3]),
        "compose_hash": hex::encode(app.compose_hash),
        "event_log": serde_json::from_str::<serde_json::Value>(&dstack_json(&log)).map_err(|e| failed(e.to_string()))?,
        "app_compose": compose,
    });
    Ok(serde_json::json!({
        "app_id": hex::encode(&app.app_id),
        "instance_id": hex::encode(&app.instance_id),
        "app_name": "simulated",
        "compose_hash": hex::encode(app.compose_hash),
        "tcb_info": tcb_info.to_string(),
        "vm_config": serde_json::json!({ "simulated": true }).to_string(),
    }))
}

async fn attest(td: &QuoteProvider, report_data: [u8; 64]) -> Result<(Vec<u8>, EventLog), (StatusCode, String)> {
    let failed = |e: String| (StatusCode::INTERNAL_SERVER_ERROR, e);
    let att = td.attest(report_data).await.map_err(|e| failed(e.to_string()))?;
    let log = EventLog::from_compact(&att.event_log).map_err(|e| failed(e.to_string()))?;
    Ok((att.quote, log))
}

/// The log as a Dstack `GetQuote` response's `event_log` string, which `replicatoor_encode::eventlog::from_dstack_json` reads:
/// one object per event with `imr`, `event_type`, `digest`, `event` and `event_payload` (hex), plus
/// `version: 2` on runtime events in that digest format. (Here, not in the trust kernel: only this
/// simulator writes event logs.)
fn dstack_json(log: &EventLog) -> String {
    let events: Vec<serde_json::Value> = log
        .events()
        .iter()
        .map(|e| {
            let mut v = serde_json::json!({
                "imr": 3,
                "event_type": DSTACK_RUNTIME_EVENT_TYPE,
                "digest": hex::encode(e.digest()),
                "event": e.name(),
                "event_payload": hex::encode(e.payload()),
            });
            if e.digest_format() == DigestFormat::V2 {
                v["version"] = 2.into();
            }
            v
        })
        .collect();
    serde_json::Value::Array(events).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use replicatoor_core::attest::eventlog::Event;
    use replicatoor_encode::eventlog::from_dstack_json;

    const RECORDED: &str =
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/dstack/tdx-lite-getquote.json"));

    #[test]
    fn the_recorded_event_log_reads_back_the_same_and_keeps_dstack_field_names() {
        let recorded: serde_json::Value = serde_json::from_str(RECORDED).unwrap();
        let json = recorded["event_log"].as_str().unwrap();
        let log = from_dstack_json(json).unwrap().runtime;
        let text = dstack_json(&log);
        assert_eq!(from_dstack_json(&text).unwrap().runtime, log);
        let ours: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        let theirs: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
        // The recorded boot-time events come first; only the runtime ones are compact, and written.
        let theirs = &theirs[theirs.len() - ours.len()..];
        assert_eq!(ours.len(), 9);
        for (o, t) in ours.iter().zip(theirs) {
            let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(o), keys(t));
            assert_eq!((&o["imr"], &o["event"], &o["event_payload"]), (&t["imr"], &t["event"], &t["event_payload"]));
            // Runtime digests are written out (the recording leaves them empty).
            assert_eq!(o["digest"].as_str().unwrap().len(), 96);
        }
    }

    #[test]
    fn v2_events_say_so_and_read_back_as_v2() {
        let log = EventLog::from_events(vec![Event::runtime("compose-hash", vec![7; 32], DigestFormat::V2)]);
        let text = dstack_json(&log);
        assert!(text.contains(r#""version":2"#), "{text}");
        assert_eq!(from_dstack_json(&text).unwrap().runtime, log);
    }
}
