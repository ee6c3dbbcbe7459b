//! Where a node's own quote comes from: the Dstack guest agent (production) or the simulator.

use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, Request};
use hyper_util::rt::TokioIo;
use replicatoor_core::attest::{eventlog::EventLog, quote::Measurements};
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

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

impl Attestation {
    /// The OS and app reference ids this attestation claims (its quote's measurements, its event
    /// log's compose hash), read without verifying anything: for a node to know its own version, or
    /// an operator's tool to name what it asks about; never to decide a release. None where a part
    /// does not parse.
    pub fn claimed_references(&self) -> (Option<alloy::primitives::B256>, Option<alloy::primitives::B256>) {
        use replicatoor_core::{
            attest::{eventlog::EventLog, quote::Measurements},
            protocol::app_reference_id,
        };
        let os = Measurements::parse_unverified(&self.quote).ok().and_then(|(_, _, m)| m).map(|m| m.os_reference_id());
        let app = EventLog::from_compact(&self.event_log)
            .and_then(|l| l.app_info())
            .ok()
            .map(|a| app_reference_id(&a.compose_hash));
        (os, app)
    }

    /// The `quote` argument a node posts: the compact form (PROTOCOL.md §3.9) where the quote has
    /// one, the raw quote otherwise.
    pub fn posted_quote(&self) -> Vec<u8> {
        replicatoor_core::attest::compact::to_posted(&self.quote)
    }

    /// The `requestSecret` call for this attestation and HPKE key: what the requester sends and
    /// `replicatoor encode request` prints.
    pub fn request_call(&self, hpke_pub_key: [u8; 32]) -> replicatoor_chain::UpgradeOperator::requestSecretCall {
        replicatoor_chain::UpgradeOperator::requestSecretCall::new(
            hpke_pub_key,
            self.posted_quote(),
            self.event_log.clone(),
        )
    }
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
    /// The Dstack guest agent over its unix socket (the first socket that exists is used, with the
    /// API its name calls for: see [`GuestAgentApi::for_socket`]).
    Dstack { sockets: Vec<PathBuf> },
    /// SIMULATED quotes (dev/test only; visible on chain as such).
    #[cfg(feature = "simulated")]
    Simulated(Box<replicatoor_testkit::simulated::SimulatedTd>),
}

impl QuoteProvider {
    /// The guest agent at its default sockets.
    pub fn dstack_default() -> Self {
        QuoteProvider::Dstack { sockets: vec![DSTACK_SOCKET.into(), TAPPD_SOCKET.into()] }
    }

    pub fn is_simulated(&self) -> bool {
        match self {
            #[cfg(feature = "simulated")]
            QuoteProvider::Simulated(_) => true,
            QuoteProvider::Dstack { .. } => false,
        }
    }

    /// A quote whose report_data is exactly `report_data`, with the compact event log.
    pub async fn attest(&self, report_data: [u8; 64]) -> Result<Attestation, ProviderError> {
        match self {
            #[cfg(feature = "simulated")]
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
                guest_agent_get_quote(path, GuestAgentApi::for_socket(path), &report_data).await
            }
        }
    }
}

/// The request API a guest-agent socket speaks.
///
/// Dstack's guest agent serves two sockets (Dstack-TEE/dstack, `guest-agent/src/server.rs`):
/// `dstack.sock` mounts the `DstackGuest` service at `/`, so a quote is `POST /GetQuote`
/// `{"report_data": hex}`; the legacy `tappd.sock` mounts only the old `Tappd` service under
/// `/prpc/`, where `/GetQuote` is a 404 and a quote is `POST /prpc/Tappd.TdxQuote?json`
/// `{"report_data": hex, "hash_algorithm": "raw"}`. Without `"raw"` tappd would put
/// `sha512("app-data:" ‖ report_data)` in the quote instead of our bytes. (`Tappd.RawQuote`
/// does the same as `TdxQuote` + `raw`, but tappd builds older than 2024-12-23 lack it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestAgentApi {
    /// `POST /GetQuote` on `dstack.sock`.
    Dstack,
    /// `POST /prpc/Tappd.TdxQuote?json` with `hash_algorithm: "raw"` on the legacy `tappd.sock`.
    Tappd,
}

impl GuestAgentApi {
    /// The API of a socket, by its file name: `tappd.sock` is the legacy API, anything else Dstack's.
    pub fn for_socket(path: &Path) -> Self {
        if path.file_name().is_some_and(|n| n == "tappd.sock") {
            GuestAgentApi::Tappd
        } else {
            GuestAgentApi::Dstack
        }
    }

    /// The request target and JSON body asking for a quote over exactly `report_data`.
    pub fn request(self, report_data: &[u8; 64]) -> (&'static str, String) {
        let hex = hex::encode(report_data);
        match self {
            GuestAgentApi::Dstack => ("/GetQuote", serde_json::json!({ "report_data": hex }).to_string()),
            GuestAgentApi::Tappd => (
                "/prpc/Tappd.TdxQuote?json",
                serde_json::json!({ "report_data": hex, "hash_algorithm": "raw" }).to_string(),
            ),
        }
    }
}

/// The fields we use of Dstack's `GetQuoteResponse` and tappd's `TdxQuoteResponse` (same names).
#[derive(serde::Deserialize)]
struct GetQuoteResponse {
    quote: String,
    event_log: String,
}

/// `POST /GetQuote {"report_data": hex}` on a Dstack guest agent's socket.
pub async fn dstack_get_quote(path: &Path, report_data: &[u8; 64]) -> Result<Attestation, ProviderError> {
    guest_agent_get_quote(path, GuestAgentApi::Dstack, report_data).await
}

/// `POST /prpc/Tappd.TdxQuote?json {"report_data": hex, "hash_algorithm": "raw"}` on a legacy tappd socket.
pub async fn tappd_get_quote(path: &Path, report_data: &[u8; 64]) -> Result<Attestation, ProviderError> {
    guest_agent_get_quote(path, GuestAgentApi::Tappd, report_data).await
}

/// Ask the guest agent at `path`, speaking `api`, for a quote over `report_data`. The answer is
/// checked to carry exactly that report_data (a guest agent that hashed it gives a useless quote).
pub async fn guest_agent_get_quote(
    path: &Path,
    api: GuestAgentApi,
    report_data: &[u8; 64],
) -> Result<Attestation, ProviderError> {
    let sock_err = |reason: String| ProviderError::Socket { path: path.display().to_string(), reason };
    let (target, body) = api.request(report_data);
    let fut = async {
        let stream = tokio::net::UnixStream::connect(path).await.map_err(|e| sock_err(e.to_string()))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| sock_err(e.to_string()))?;
        tokio::spawn(conn);
        let req = Request::post(target)
            .header("host", "localhost")
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
    let quoted = Measurements::parse_unverified(&quote)
        .map_err(|e| ProviderError::BadResponse(format!("quote: {e}")))?
        .2
        .ok_or_else(|| ProviderError::BadResponse("quote is not a TDX quote".into()))?
        .report_data;
    if quoted != *report_data {
        return Err(ProviderError::BadResponse(format!(
            "quote binds report_data {}, asked for {}",
            hex::encode(quoted),
            hex::encode(report_data)
        )));
    }
    let log =
        EventLog::from_dstack_json(&r.event_log).map_err(|e| ProviderError::BadResponse(format!("event log: {e}")))?;
    let event_log = log.to_compact().map_err(|e| ProviderError::BadResponse(format!("event log: {e}")))?;
    Ok(Attestation { quote, event_log })
}
