//! The four light-client endpoints of the standard beacon API, as plain bytes.
//!
//! The beacon node is untrusted transport: nothing here interprets an answer beyond its HTTP status
//! and size. Every request has a deadline and every body a size cap, so a slow or hostile server can
//! cost the follower at most [`REQUEST_TIMEOUT`] and [`MAX_RESPONSE_BYTES`] per request.

use super::BeaconError;
use alloy::transports::http::reqwest::{self, header::ACCEPT, StatusCode};
use replicatoor_beacon::Root;
use std::time::Duration;

/// Deadline of one request, connect to last body byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest body accepted. A mainnet update is ~27 KB in SSZ and ~70 KB in JSON, so a page of
/// [`UPDATES_PER_REQUEST`] periods fits with a wide margin.
pub const MAX_RESPONSE_BYTES: usize = 8 << 20;

/// Periods asked for per `updates` request (the spec allows up to 128; smaller pages keep each
/// body well under the cap).
pub const UPDATES_PER_REQUEST: u64 = 32;

/// SSZ first (smaller, no JSON parsing of 512 keys); JSON is accepted too, the codec tells them apart.
const ACCEPT_SSZ_THEN_JSON: &str = "application/octet-stream;q=1.0, application/json;q=0.9";

/// A beacon API base URL and an HTTP client.
#[derive(Debug, Clone)]
pub struct BeaconApi {
    base: String,
    http: reqwest::Client,
}

/// A body, or "the server has none" (404 on the finality/optimistic endpoints, which nodes answer
/// until they have seen such an update).
pub(crate) enum Body {
    Bytes(Vec<u8>),
    NotAvailable,
}

impl BeaconApi {
    /// A client for `base_url` (e.g. `http://127.0.0.1:5052`); a trailing `/` is ignored.
    pub fn new(base_url: &str) -> Result<BeaconApi, BeaconError> {
        let base = base_url.trim_end_matches('/').to_owned();
        reqwest::Url::parse(&base).map_err(|e| BeaconError::Config(format!("beacon API URL {base_url:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| BeaconError::Config(format!("HTTP client: {e}")))?;
        Ok(BeaconApi { base, http })
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    pub(crate) async fn bootstrap(&self, block_root: Root) -> Result<Vec<u8>, BeaconError> {
        self.get_required(&format!("/eth/v1/beacon/light_client/bootstrap/{block_root}")).await
    }

    pub(crate) async fn updates(&self, start_period: u64, count: u64) -> Result<Vec<u8>, BeaconError> {
        self.get_required(&format!("/eth/v1/beacon/light_client/updates?start_period={start_period}&count={count}"))
            .await
    }

    pub(crate) async fn finality_update(&self) -> Result<Body, BeaconError> {
        self.get("/eth/v1/beacon/light_client/finality_update").await
    }

    pub(crate) async fn optimistic_update(&self) -> Result<Body, BeaconError> {
        self.get("/eth/v1/beacon/light_client/optimistic_update").await
    }

    async fn get_required(&self, path: &str) -> Result<Vec<u8>, BeaconError> {
        match self.get(path).await? {
            Body::Bytes(b) => Ok(b),
            Body::NotAvailable => {
                Err(BeaconError::Status { url: format!("{}{path}", self.base), status: StatusCode::NOT_FOUND.as_u16() })
            }
        }
    }

    async fn get(&self, path: &str) -> Result<Body, BeaconError> {
        let url = format!("{}{path}", self.base);
        let transport = |e: reqwest::Error| BeaconError::Transport { url: url.clone(), reason: e.to_string() };
        let mut response = self.http.get(&url).header(ACCEPT, ACCEPT_SSZ_THEN_JSON).send().await.map_err(transport)?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(Body::NotAvailable);
        }
        if !status.is_success() {
            return Err(BeaconError::Status { url, status: status.as_u16() });
        }
        let too_large = || BeaconError::TooLarge { url: url.clone(), limit: MAX_RESPONSE_BYTES };
        if response.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
            return Err(too_large());
        }
        // Read chunk by chunk so a server that lies about (or omits) Content-Length still cannot
        // make us buffer more than the cap.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Body::Bytes(body))
    }
}
