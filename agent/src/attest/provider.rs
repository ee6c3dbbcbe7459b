//! Where a node's own quote comes from: the Dstack guest agent (production) or the simulator.

use super::{eventlog::EventLog, simulated::SimulatedTd};
use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, Request};
use hyper_util::rt::TokioIo;
use std::{path::PathBuf, time::Duration};

/// Default socket of the Dstack guest agent, and the legacy tappd socket tried after it.
pub const DSTACK_SOCKET: &str = "/var/run/dstack.sock";
pub const TAPPD_SOCKET: &str = "/var/run/tappd.sock";
/// Largest guest-agent response we read.
const MAX_RESPONSE: usize = 1 << 20;

/// A node's attestation as posted on chain.
#[derive(Debug, Clone)]
pub struct Attestation {
    pub quote: Vec<u8>,
    /// Compact runtime event log (see `eventlog::EventLog::to_compact`).
    pub event_log: Vec<u8>,
}

/// Why no quote could be had.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("guest agent socket {path}: {reason}")]
    Socket { path: String, reason: String },
    #[error("guest agent answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("guest agent response is not valid: {0}")]
    BadResponse(String),
    #[error("simulated quote: {0}")]
    Simulated(String),
}

/// The source of this node's quotes.
pub enum QuoteProvider {
    /// The Dstack guest agent over its unix socket (the first socket that exists is used).
    Dstack { sockets: Vec<PathBuf> },
    /// SIMULATED quotes (dev/test only; visible on chain as such).
    Simulated(Box<SimulatedTd>),
}

impl QuoteProvider {
    /// The guest agent at its default sockets.
    pub fn dstack_default() -> Self {
        QuoteProvider::Dstack { sockets: vec![DSTACK_SOCKET.into(), TAPPD_SOCKET.into()] }
    }

    pub fn is_simulated(&self) -> bool {
        matches!(self, QuoteProvider::Simulated(_))
    }

    /// A quote whose report_data is exactly `report_data`, with the compact event log.
    pub async fn attest(&self, report_data: [u8; 64]) -> Result<Attestation, ProviderError> {
        match self {
            QuoteProvider::Simulated(td) => {
                let (quote, event_log) = td.attest(report_data).map_err(ProviderError::Simulated)?;
                Ok(Attestation { quote, event_log })
            }
            QuoteProvider::Dstack { sockets } => {
                let path = sockets.iter().find(|p| p.exists()).ok_or_else(|| ProviderError::Socket {
                    path: sockets.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                    reason:
                        "no guest agent socket exists (is this a Dstack CVM? for dev use --quote-provider simulated)"
                            .into(),
                })?;
                dstack_get_quote(path, &report_data).await
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct GetQuoteResponse {
    quote: String,
    event_log: String,
}

/// `POST /GetQuote {"report_data": hex}` on the guest agent's socket.
pub async fn dstack_get_quote(path: &std::path::Path, report_data: &[u8; 64]) -> Result<Attestation, ProviderError> {
    let sock_err = |reason: String| ProviderError::Socket { path: path.display().to_string(), reason };
    let body = serde_json::json!({ "report_data": hex::encode(report_data) }).to_string();
    let fut = async {
        let stream = tokio::net::UnixStream::connect(path).await.map_err(|e| sock_err(e.to_string()))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| sock_err(e.to_string()))?;
        tokio::spawn(conn);
        let req = Request::post("/GetQuote")
            .header("host", "dstack")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| sock_err(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| sock_err(e.to_string()))?;
        let status = resp.status().as_u16();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE);
        let bytes = limited.collect().await.map_err(|e| sock_err(e.to_string()))?.to_bytes();
        Ok::<_, ProviderError>((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .map_err(|_| sock_err("no answer within 30 s".into()))??;
    if status != 200 {
        return Err(ProviderError::Status {
            status,
            body: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        });
    }
    let r: GetQuoteResponse = serde_json::from_slice(&bytes).map_err(|e| ProviderError::BadResponse(e.to_string()))?;
    let quote = hex::decode(r.quote.trim_start_matches("0x"))
        .map_err(|e| ProviderError::BadResponse(format!("quote hex: {e}")))?;
    let log =
        EventLog::from_dstack_json(&r.event_log).map_err(|e| ProviderError::BadResponse(format!("event log: {e}")))?;
    let event_log = log.to_compact().map_err(|e| ProviderError::BadResponse(format!("event log: {e}")))?;
    Ok(Attestation { quote, event_log })
}
