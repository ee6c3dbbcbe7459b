//! Where a node's own quote comes from: the Dstack guest agent (production) or the simulator.

use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, Request};
use hyper_util::rt::TokioIo;
use replicatoor_core::attest::quote::Measurements;
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
    /// Compact runtime event log (`replicatoor_encode::eventlog::to_compact`).
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
        replicatoor_compact_quote::to_posted(&self.quote)
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
    /// None of the sockets exists: not inside a Dstack CVM (or its socket is not mounted).
    #[error("no guest agent socket exists at {paths} (is this a Dstack CVM? for dev use --quote-provider simulated)")]
    NoGuestAgent { paths: String },
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
    /// The guest agent at `socket`, or at its default sockets.
    pub fn dstack(socket: Option<&PathBuf>) -> Self {
        match socket {
            Some(p) => QuoteProvider::Dstack { sockets: vec![p.clone()] },
            None => QuoteProvider::Dstack { sockets: vec![DSTACK_SOCKET.into(), TAPPD_SOCKET.into()] },
        }
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
                let path = first_socket(sockets)?;
                guest_agent_get_quote(path, GuestAgentApi::for_socket(path), &report_data).await
            }
        }
    }
}

/// The first of `sockets` that exists (the guest agent's, then the legacy tappd one by default).
fn first_socket(sockets: &[PathBuf]) -> Result<&PathBuf, ProviderError> {
    sockets.iter().find(|p| p.exists()).ok_or_else(|| ProviderError::NoGuestAgent {
        paths: sockets.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
    })
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

    /// The request target and JSON body of `Info` (who this CVM is, with its app-compose as deployed).
    pub fn info_request(self) -> (&'static str, String) {
        match self {
            GuestAgentApi::Dstack => ("/Info", "{}".into()),
            GuestAgentApi::Tappd => ("/prpc/Tappd.Info?json", "{}".into()),
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

/// One call to the guest agent at `path`: the answer's body when it is HTTP 200.
async fn guest_agent_call(path: &Path, target: &str, body: String) -> Result<Bytes, ProviderError> {
    let sock_err = |reason: String| ProviderError::Socket { path: path.display().to_string(), reason };
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
    Ok(bytes)
}

/// Ask the guest agent at `path`, speaking `api`, for a quote over `report_data`. The answer is
/// checked to carry exactly that report_data (a guest agent that hashed it gives a useless quote).
pub async fn guest_agent_get_quote(
    path: &Path,
    api: GuestAgentApi,
    report_data: &[u8; 64],
) -> Result<Attestation, ProviderError> {
    let (target, body) = api.request(report_data);
    let bytes = guest_agent_call(path, target, body).await?;
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
    Ok(Attestation { quote, event_log: compact_event_log(&r.event_log)? })
}

/// The compact form (what a node posts, and what its own compose is checked with) of a guest agent's
/// JSON event log. Transport: holders decode the posted form with the kernel, and
/// `config::measured::check_own_compose` replays it with the kernel, every digest recomputed.
pub(crate) fn compact_event_log(json: &str) -> Result<Vec<u8>, ProviderError> {
    let log = replicatoor_encode::eventlog::from_dstack_json(json)
        .map_err(|e| ProviderError::BadResponse(format!("event log: {e}")))?;
    replicatoor_encode::eventlog::to_compact(&log.runtime)
        .map_err(|e| ProviderError::BadResponse(format!("event log: {e}")))
}

/// What the guest agent says this CVM measured: its app-compose.json and a quote with its event log.
/// Unchecked: `config::measured::check_own_compose` decides whether the document is the measured one.
#[derive(Debug, Clone)]
pub struct OwnMeasurement {
    /// The document exactly as the guest agent gave it (its bytes are what the compose hash covers).
    pub app_compose: String,
    /// A quote of this CVM (report_data [`SELF_MEASURE_REPORT_DATA`]) and its event log.
    pub attestation: Attestation,
    /// The socket they came from.
    pub socket: PathBuf,
}

/// report_data of the quote a node asks for only to check its own compose (never posted).
const SELF_MEASURE_REPORT_DATA: &[u8] = b"replicatoor: own measured configuration";

impl QuoteProvider {
    /// This CVM's own app-compose.json from the guest agent (`Info`), with a quote the same guest agent
    /// makes now and its event log: the document counts only once `config::measured::check_own_compose`
    /// found its sha256 to be the compose hash of that log and the log to replay to the quote's RTMR3.
    /// All local: nothing is fetched from the network. None for the simulated provider, whose
    /// configuration is not measured.
    pub async fn own_measurement(&self) -> Result<Option<OwnMeasurement>, ProviderError> {
        let sockets = match self {
            QuoteProvider::Dstack { sockets } => sockets,
            #[cfg(feature = "simulated")]
            QuoteProvider::Simulated(_) => return Ok(None),
        };
        let path = first_socket(sockets)?;
        let api = GuestAgentApi::for_socket(path);
        let (target, body) = api.info_request();
        let info = guest_agent_call(path, target, body).await?;
        let app_compose = app_compose_of_info(&info)?;
        let mut report_data = [0u8; 64];
        report_data[..SELF_MEASURE_REPORT_DATA.len()].copy_from_slice(SELF_MEASURE_REPORT_DATA);
        let attestation = guest_agent_get_quote(path, api, &report_data).await?;
        Ok(Some(OwnMeasurement { app_compose, attestation, socket: path.clone() }))
    }
}

/// The `app_compose` string of an `Info` answer. Dstack puts it in `tcb_info`, a JSON string in some
/// versions and an object in others: both are read.
pub fn app_compose_of_info(info: &[u8]) -> Result<String, ProviderError> {
    let bad = |why: String| ProviderError::BadResponse(format!("Info: {why}"));
    let v: serde_json::Value = serde_json::from_slice(info).map_err(|e| bad(e.to_string()))?;
    let tcb = match &v["tcb_info"] {
        serde_json::Value::String(s) => serde_json::from_str(s).map_err(|e| bad(format!("tcb_info: {e}")))?,
        o @ serde_json::Value::Object(_) => o.clone(),
        _ => return Err(bad("no tcb_info (a Dstack guest agent that reports its app compose is needed)".into())),
    };
    tcb["app_compose"].as_str().map(str::to_string).ok_or_else(|| bad("tcb_info has no app_compose string".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_carries_the_compose_as_a_json_string_or_an_object() {
        let doc = r#"{"a":1}"#;
        let as_string = serde_json::json!({ "tcb_info": serde_json::json!({ "app_compose": doc }).to_string() });
        let as_object = serde_json::json!({ "tcb_info": { "app_compose": doc } });
        for info in [as_string, as_object] {
            assert_eq!(app_compose_of_info(info.to_string().as_bytes()).unwrap(), doc);
        }
        for bad in [r#"{}"#, r#"{"tcb_info":"not json"}"#, r#"{"tcb_info":{"app_compose":1}}"#, "[]"] {
            assert!(app_compose_of_info(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
