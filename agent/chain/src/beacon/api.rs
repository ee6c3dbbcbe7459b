//! The four light-client endpoints of the standard beacon API, fetched and decoded into the
//! verifier's types ([`replicatoor_beacon::codec`]).
//!
//! The beacon node is untrusted transport, and so is this module: it decides nothing about what the
//! client accepts. Every value it hands out is one a hostile server could have served, and the
//! follower (`mod.rs`) has the verifier check it against the pinned checkpoint and the sync
//! committee before anything is kept; `tests/tests/light_client.rs` serves attacker committees,
//! wrong checkpoints and broken transports through it, each refused or an error. What it does bound
//! is cost: every request has a deadline and every body a size cap, so a slow or hostile server can
//! cost the follower at most [`REQUEST_TIMEOUT`] and [`MAX_RESPONSE_BYTES`] per request, and an
//! `updates` page is cut to the periods asked for.

use super::BeaconError;
use alloy::transports::http::reqwest::{self, header::ACCEPT, StatusCode};
use replicatoor_beacon::{
    decode_bootstrap, decode_finality_update, decode_optimistic_update, decode_updates, DecodeError,
    LightClientBootstrap, LightClientUpdate, Network, Preset, Root,
};
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

/// Why a beacon API request gave no light-client data (whatever the reason, the follower keeps its
/// last verified state).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request did not complete (connect, deadline, reset).
    #[error("beacon API request {url} failed: {reason}")]
    Transport {
        /// The request URL.
        url: String,
        /// The HTTP client's complaint.
        reason: String,
    },
    /// The server answered with a non-success status.
    #[error("beacon API {url} answered HTTP {status}")]
    Status {
        /// The request URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body exceeded [`MAX_RESPONSE_BYTES`].
    #[error("beacon API {url} answered more than {limit} bytes")]
    TooLarge {
        /// The request URL.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// The body is neither light-client JSON nor SSZ of this network.
    #[error("beacon API {url} answered malformed data: {source}")]
    Malformed {
        /// The request URL.
        url: String,
        /// The decoder's reason.
        source: DecodeError,
    },
}

/// A beacon API base URL and an HTTP client.
#[derive(Debug, Clone)]
pub struct BeaconApi {
    base: String,
    http: reqwest::Client,
}

/// A body, or "the server has none" (404 on the finality/optimistic endpoints, which nodes answer
/// until they have seen such an update).
enum Body {
    Bytes(Vec<u8>),
    NotAvailable,
}

/// A decoded answer, with the URL it came from (for the follower's errors).
pub(crate) struct Served<T> {
    pub(crate) url: String,
    pub(crate) data: T,
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

    /// The bootstrap of `block_root`, unverified.
    pub(crate) async fn bootstrap<P: Preset>(
        &self,
        network: &Network,
        block_root: Root,
    ) -> Result<Served<LightClientBootstrap<P>>, FetchError> {
        let (url, body) = self.get_required(&format!("/eth/v1/beacon/light_client/bootstrap/{block_root}")).await?;
        let decoded = decode_bootstrap::<P>(network, &body);
        let data = decoded.map_err(|source| FetchError::Malformed { url: url.clone(), source })?.data;
        Ok(Served { url, data })
    }

    /// The period updates from `start_period`, unverified, in attested-slot order and at most `count`
    /// of them: more than asked for is not an answer to the request, and verifying it would let a
    /// server make one sync run as many signature checks as fit in a body.
    pub(crate) async fn updates<P: Preset>(
        &self,
        network: &Network,
        start_period: u64,
        count: u64,
    ) -> Result<Served<Vec<LightClientUpdate<P>>>, FetchError> {
        let path = format!("/eth/v1/beacon/light_client/updates?start_period={start_period}&count={count}");
        let (url, body) = self.get_required(&path).await?;
        let decoded = decode_updates::<P>(network, &body);
        let mut updates = decoded.map_err(|source| FetchError::Malformed { url: url.clone(), source })?;
        updates.sort_by_key(|u| u.data.attested_header.beacon.slot);
        updates.truncate(count as usize);
        Ok(Served { url, data: updates.into_iter().map(|u| u.data).collect() })
    }

    /// The newest finality update (as an update without a next committee), if the server has one.
    pub(crate) async fn finality_update<P: Preset>(
        &self,
        network: &Network,
    ) -> Result<Option<Served<LightClientUpdate<P>>>, FetchError> {
        let path = "/eth/v1/beacon/light_client/finality_update";
        self.get_optional(path, |body| Ok(decode_finality_update::<P>(network, body)?.data.into())).await
    }

    /// The newest optimistic update (as an update without finality or next committee), if any.
    pub(crate) async fn optimistic_update<P: Preset>(
        &self,
        network: &Network,
    ) -> Result<Option<Served<LightClientUpdate<P>>>, FetchError> {
        let path = "/eth/v1/beacon/light_client/optimistic_update";
        self.get_optional(path, |body| Ok(decode_optimistic_update::<P>(network, body)?.data.into())).await
    }

    async fn get_optional<T>(
        &self,
        path: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, DecodeError>,
    ) -> Result<Option<Served<T>>, FetchError> {
        let url = format!("{}{path}", self.base);
        match self.get(path).await? {
            Body::NotAvailable => Ok(None),
            Body::Bytes(body) => match decode(&body) {
                Ok(data) => Ok(Some(Served { url, data })),
                Err(source) => Err(FetchError::Malformed { url, source }),
            },
        }
    }

    /// The body and its URL; a 404 is an error here.
    async fn get_required(&self, path: &str) -> Result<(String, Vec<u8>), FetchError> {
        let url = format!("{}{path}", self.base);
        match self.get(path).await? {
            Body::Bytes(b) => Ok((url, b)),
            Body::NotAvailable => Err(FetchError::Status { url, status: StatusCode::NOT_FOUND.as_u16() }),
        }
    }

    async fn get(&self, path: &str) -> Result<Body, FetchError> {
        let url = format!("{}{path}", self.base);
        let transport = |e: reqwest::Error| FetchError::Transport { url: url.clone(), reason: e.to_string() };
        let mut response = self.http.get(&url).header(ACCEPT, ACCEPT_SSZ_THEN_JSON).send().await.map_err(transport)?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(Body::NotAvailable);
        }
        if !status.is_success() {
            return Err(FetchError::Status { url, status: status.as_u16() });
        }
        let too_large = || FetchError::TooLarge { url: url.clone(), limit: MAX_RESPONSE_BYTES };
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
