//! A SIMULATED beacon chain for anvil dev chains: it follows an execution RPC and serves the four
//! standard light-client endpoints (JSON and SSZ) for it, so tests and demos drive exactly the
//! mainnet verification code (`replicatoor_chain::beacon`, `replicatoor_beacon`).
//!
//! For each execution block `n` the beacon block at slot [`slot_of_block`]`(n)` carries an execution
//! payload header with the block's real number, hash, parent hash, state root, receipts root,
//! timestamp, bloom, gas and fee fields (fetched over RPC, header hash checked). The transactions
//! and withdrawals roots are the RPC's trie roots, not the SSZ roots a real payload header holds:
//! nothing checks them against transactions.
//!
//! Choices, and why:
//! * Network: [`network()`], its own genesis validators root (`sha256` of a label), every fork up to
//!   Electra at epoch 0 (the newest light-client shapes), the MINIMAL preset (32-member committees,
//!   64-slot periods) so signing stays cheap and period changes happen every 32 blocks.
//! * Slots: block `n` is at slot `2n + 2` and its sync aggregate at slot `2n + 3`, so a signature
//!   never falls in the next period (no slot 0: the spec reads a zero finalized slot as genesis).
//!   Genesis is the unix epoch with one-second slots, so the TD clock's current slot (~1.7e9) is
//!   ahead of any simulated signature slot however many blocks anvil mines at once: the verifier's
//!   `current_slot >= signature_slot` check runs unchanged and never fires spuriously. Staleness
//!   is therefore judged from execution timestamps, as the light client does anyway.
//! * Finality: the state of a block in epoch `e >= 3` finalizes the first block of epoch `e - 2`
//!   (mainnet's usual two-epoch lag), so the finalized head trails by 8 to 12 blocks.
//! * Committees: period `p` is signed by the committee derived from `seed ‖ p` with all 32 members.
//!   [`Committee::Public`] uses a public seed (anyone can sign: dev only, proves nothing);
//!   [`Committee::Private`] a random one, so a test can run an attacker beacon on the same chain
//!   that cannot sign for the public one.
//! * Checkpoint: the block that was the execution head when [`serve`] started; clients pin its
//!   beacon root ([`SimBeacon::checkpoint`], also served at `/replicatoor/checkpoint`).
//!
//! Beacon blocks are built on demand and memoized by execution block number. Execution reorgs
//! (`anvil_reorg`, `evm_revert`) are followed: before answering for the head, the newest memoized
//! blocks are checked against the RPC's hashes, and every block a reorg replaced is built again
//! (with the same slot: a light client takes the new fork once it is higher than what it has), so
//! no cached update or finalized root still names a replaced block. The checkpoint's block is never
//! rebuilt (a checkpoint is final, whatever a dev chain does). A block's state commits to its
//! finalized block, so the first block built (the checkpoint) costs one RPC call per eight blocks
//! back to genesis: seconds on a chain of 100k blocks.

use alloy::{
    primitives::U256,
    providers::{DynProvider, Provider, ProviderBuilder},
};
use http_body_util::Full;
use hyper::{
    body::{Bytes, Incoming},
    header::{HeaderValue, ACCEPT, CONTENT_TYPE},
    server::conn::http1,
    service::service_fn,
    Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use replicatoor_beacon::{
    sim::{encode_updates_ssz, finality_update, optimistic_update, versioned_json, SimBlock, SimCommittee, SimState},
    ExecutionPayloadHeaderDeneb, LightClientUpdate, Minimal, Network, PresetKind, Root,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use ssz::Encode;
use ssz_types::VariableList;
use std::{collections::HashMap, convert::Infallible, net::SocketAddr, str::FromStr, sync::Arc};
use tokio::{net::TcpListener, sync::Mutex, task::JoinSet};
use tree_hash::TreeHash;

/// Labels the public committee seed.
const PUBLIC_SEED_LABEL: &[u8] = b"replicatoor/simulated-beacon/public-committee/v1";
/// The spec's cap on periods per `updates` request.
const MAX_REQUEST_LIGHT_CLIENT_UPDATES: u64 = 128;

/// Who holds the sync-committee keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committee {
    /// Keys from a public seed: anyone can sign this chain (dev only).
    Public,
    /// Keys from a random seed: only this process can sign.
    Private,
}

/// The beacon block clients must pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Beacon block root (what `LightClient::new` takes).
    pub block_root: Root,
    /// Its beacon slot.
    pub slot: u64,
    /// The execution block it carries.
    pub execution_block: u64,
}

/// Why the simulated beacon could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum SimBeaconError {
    /// The execution RPC failed or gave an inconsistent block.
    #[error("execution RPC: {0}")]
    Rpc(String),
    /// The listen address could not be bound.
    #[error("listen: {0}")]
    Listen(#[from] std::io::Error),
    /// Encoding a response failed.
    #[error("encoding: {0}")]
    Encode(String),
    /// No randomness for a private committee.
    #[error("random seed: {0}")]
    Random(String),
}

/// The simulated network: own GVR, Electra from genesis, minimal preset, genesis at the unix epoch
/// with one-second slots (see the module docs).
pub fn network() -> Network {
    // The GVR is defined by the verifier crate, which so recognises a network relabelled from this
    // one (`Network::is_simulated`) and lets a release build refuse it.
    Network::simulated(Network::simulated_genesis_validators_root(), 0, 1, PresetKind::Minimal)
}

/// The beacon slot of execution block `n`.
pub fn slot_of_block(n: u64) -> u64 {
    2 * n + 2
}

/// The first execution block whose slot is `slot` or later.
fn first_block_from_slot(slot: u64) -> u64 {
    slot.saturating_sub(2).div_ceil(2)
}

/// The block finalized in the state of block `n`: the first block of the epoch two before its own.
fn finalized_block(network: &Network, n: u64) -> Option<u64> {
    let epoch = network.epoch_at_slot(slot_of_block(n));
    (epoch >= 3).then(|| first_block_from_slot((epoch - 2) * network.preset.slots_per_epoch()))
}

/// A running simulated beacon; stops when dropped.
pub struct SimBeacon {
    url: String,
    network: Network,
    checkpoint: Checkpoint,
    server: tokio::task::JoinHandle<()>,
}

impl SimBeacon {
    /// Base URL of the beacon API.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The simulated network (same for every committee).
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The checkpoint to pin.
    pub fn checkpoint(&self) -> Checkpoint {
        self.checkpoint
    }
}

impl Drop for SimBeacon {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every open connection.
        self.server.abort();
    }
}

/// Follow the execution RPC at `rpc_url` and serve its beacon API on `listen` (port 0: any).
pub async fn serve(rpc_url: &str, listen: SocketAddr, committee: Committee) -> Result<SimBeacon, SimBeaconError> {
    let url = rpc_url.parse().map_err(|e| SimBeaconError::Rpc(format!("RPC URL {rpc_url:?}: {e}")))?;
    let rpc = ProviderBuilder::new().connect_http(url).erased();
    let seed: [u8; 32] = match committee {
        Committee::Public => Sha256::digest(PUBLIC_SEED_LABEL).into(),
        Committee::Private => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| SimBeaconError::Random(e.to_string()))?;
            seed
        }
    };
    let mut chain = Chain {
        network: network(),
        rpc,
        seed,
        committees: HashMap::new(),
        blocks: HashMap::new(),
        by_root: HashMap::new(),
        period_updates: HashMap::new(),
        head_update: None,
        checkpoint_block: None,
    };
    let head = chain.head().await?;
    let block = chain.block(head).await?;
    chain.checkpoint_block = Some(head);
    let checkpoint =
        Checkpoint { block_root: block.header.beacon.root(), slot: block.header.beacon.slot, execution_block: head };

    let listener = TcpListener::bind(listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let network = chain.network.clone();
    let chain = Arc::new(Mutex::new(chain));
    let server = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let chain = chain.clone();
            connections.spawn(async move {
                let svc = service_fn(move |req| {
                    let chain = chain.clone();
                    async move { Ok::<_, Infallible>(route(&chain, checkpoint, req).await) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
            while connections.try_join_next().is_some() {}
        }
    });
    Ok(SimBeacon { url, network, checkpoint, server })
}

/// The simulated beacon chain, built lazily from the execution chain and memoized.
struct Chain {
    network: Network,
    rpc: DynProvider,
    seed: [u8; 32],
    committees: HashMap<u64, Arc<SimCommittee<Minimal>>>,
    /// Beacon blocks by execution block number.
    blocks: HashMap<u64, SimBlock>,
    by_root: HashMap<Root, u64>,
    /// Updates of completed periods (they no longer change).
    period_updates: HashMap<u64, LightClientUpdate<Minimal>>,
    /// The update signed for the head last asked about.
    head_update: Option<(u64, LightClientUpdate<Minimal>)>,
    /// The checkpoint's execution block (kept through reorgs).
    checkpoint_block: Option<u64>,
}

impl Chain {
    fn committee(&mut self, period: u64) -> Arc<SimCommittee<Minimal>> {
        let seed = self.seed;
        self.committees
            .entry(period)
            .or_insert_with(|| Arc::new(SimCommittee::from_seed(&[&seed[..], &period.to_le_bytes()].concat())))
            .clone()
    }

    async fn head(&self) -> Result<u64, SimBeaconError> {
        self.rpc.get_block_number().await.map_err(|e| SimBeaconError::Rpc(e.to_string()))
    }

    async fn execution(&self, n: u64) -> Result<ExecutionPayloadHeaderDeneb, SimBeaconError> {
        let rpc = |e: String| SimBeaconError::Rpc(format!("block {n}: {e}"));
        let block = self.rpc.get_block_by_number(n.into()).await.map_err(|e| rpc(e.to_string()))?;
        let block = block.ok_or_else(|| rpc("not found".into()))?;
        let h = &block.header.inner;
        // Sign only what hashes to the block hash, so a proof against these roots is a proof
        // against the block the RPC names.
        if h.hash_slow() != block.header.hash {
            return Err(rpc("header does not hash to the block hash".into()));
        }
        Ok(ExecutionPayloadHeaderDeneb {
            parent_hash: h.parent_hash,
            fee_recipient: h.beneficiary,
            state_root: h.state_root,
            receipts_root: h.receipts_root,
            logs_bloom: h.logs_bloom.0,
            prev_randao: h.mix_hash,
            block_number: h.number,
            gas_limit: h.gas_limit,
            gas_used: h.gas_used,
            timestamp: h.timestamp,
            extra_data: VariableList::new(h.extra_data.to_vec()).map_err(|e| rpc(format!("extra data: {e:?}")))?,
            base_fee_per_gas: U256::from(h.base_fee_per_gas.unwrap_or_default()),
            block_hash: block.header.hash,
            transactions_root: h.transactions_root,
            withdrawals_root: h.withdrawals_root.unwrap_or_default(),
            blob_gas_used: h.blob_gas_used.unwrap_or_default(),
            excess_blob_gas: h.excess_blob_gas.unwrap_or_default(),
        })
    }

    /// The beacon block of execution block `n`. Its state commits to its finalized block, so that
    /// one (and its own, every two epochs back) is built first.
    async fn block(&mut self, n: u64) -> Result<SimBlock, SimBeaconError> {
        let mut missing = Vec::new();
        let mut next = Some(n);
        while let Some(m) = next.filter(|m| !self.blocks.contains_key(m)) {
            missing.push(m);
            next = finalized_block(&self.network, m);
        }
        for m in missing.into_iter().rev() {
            let slot = slot_of_block(m);
            let period = self.network.period_at_slot(slot);
            let (current, following) = (self.committee(period), self.committee(period + 1));
            let mut state = SimState {
                current_sync_committee_root: current.committee().tree_hash_root(),
                next_sync_committee_root: following.committee().tree_hash_root(),
                ..SimState::default()
            };
            if let Some(f) = finalized_block(&self.network, m) {
                state.finalized_epoch = self.network.epoch_at_slot(slot_of_block(f));
                state.finalized_root = self.blocks[&f].header.beacon.root();
            }
            let block = SimBlock::new(&self.network, slot, self.execution(m).await?, &state);
            self.by_root.insert(block.header.beacon.root(), m);
            self.blocks.insert(m, block);
        }
        Ok(self.blocks[&n].clone())
    }

    /// An update attesting block `n`, signed by its period's whole committee one slot later, with
    /// the next committee and the finalized block of its state.
    async fn update(&mut self, n: u64) -> Result<LightClientUpdate<Minimal>, SimBeaconError> {
        let block = self.block(n).await?;
        let slot = block.header.beacon.slot;
        let period = self.network.period_at_slot(slot);
        let (signer, next) = (self.committee(period), self.committee(period + 1));
        let finalized = finalized_block(&self.network, n).map(|f| self.blocks[&f].header.clone());
        let size = PresetKind::Minimal.sync_committee_size();
        Ok(block.update(&self.network, &signer, slot + 1, size, Some(next.committee()), finalized.as_ref()))
    }

    /// Forget every memoized block a reorg replaced (its execution hash is no longer the RPC's for
    /// its number), with the updates that signed it. Newest first: the first block still on the
    /// chain means every one below it is too.
    async fn follow_reorgs(&mut self) -> Result<(), SimBeaconError> {
        let mut numbers: Vec<u64> = self.blocks.keys().copied().filter(|n| Some(*n) != self.checkpoint_block).collect();
        numbers.sort_unstable_by(|a, b| b.cmp(a));
        let mut replaced_from = None;
        for n in numbers {
            let now = self.rpc.get_block_by_number(n.into()).await.map_err(|e| SimBeaconError::Rpc(e.to_string()))?;
            if now.map(|b| b.header.hash) == Some(self.blocks[&n].header.execution.block_hash) {
                break;
            }
            replaced_from = Some(n);
        }
        let Some(from) = replaced_from else { return Ok(()) };
        let keep = self.checkpoint_block;
        self.blocks.retain(|n, _| *n < from || Some(*n) == keep);
        self.by_root.retain(|_, n| *n < from || Some(*n) == keep);
        let first_period = self.network.period_at_slot(slot_of_block(from));
        self.period_updates.retain(|p, _| *p < first_period);
        self.head_update = None;
        Ok(())
    }

    async fn head_update(&mut self) -> Result<LightClientUpdate<Minimal>, SimBeaconError> {
        self.follow_reorgs().await?;
        let head = self.head().await?;
        if let Some((n, update)) = &self.head_update {
            if *n == head {
                return Ok(update.clone());
            }
        }
        let update = self.update(head).await?;
        self.head_update = Some((head, update.clone()));
        Ok(update)
    }

    /// The best update of `period` as of `head`: attesting its last block, or the head while the
    /// period is still running; `None` before the period has a block.
    async fn period_update(
        &mut self,
        period: u64,
        head: u64,
    ) -> Result<Option<LightClientUpdate<Minimal>>, SimBeaconError> {
        if let Some(update) = self.period_updates.get(&period) {
            return Ok(Some(update.clone()));
        }
        let period_slots = self.network.preset.slots_per_sync_committee_period();
        let first = first_block_from_slot(period * period_slots);
        let last = first_block_from_slot((period + 1) * period_slots) - 1;
        if head < first {
            return Ok(None);
        }
        let update = self.update(last.min(head)).await?;
        if head > last {
            self.period_updates.insert(period, update.clone());
        }
        Ok(Some(update))
    }
}

/// A response body in the encoding the client asked for.
enum Reply {
    Ssz(Vec<u8>),
    Json(serde_json::Value),
    Status(StatusCode, String),
}

async fn route(chain: &Mutex<Chain>, checkpoint: Checkpoint, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let ssz =
        req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/octet-stream"));
    let reply = {
        let mut chain = chain.lock().await;
        answer(&mut chain, checkpoint, req.uri().path(), req.uri().query().unwrap_or(""), ssz).await
    };
    let (status, content_type, body) = match reply {
        Ok(Reply::Ssz(bytes)) => (StatusCode::OK, "application/octet-stream", bytes),
        Ok(Reply::Json(value)) => (StatusCode::OK, "application/json", value.to_string().into_bytes()),
        Ok(Reply::Status(code, message)) => (code, "text/plain", message.into_bytes()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e.to_string().into_bytes()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::OK && content_type != "text/plain" {
        // Every simulated slot is in Electra.
        response.headers_mut().insert("eth-consensus-version", HeaderValue::from_static("electra"));
    }
    response
}

/// The beacon-API JSON envelope, versioned by the fork at `slot`.
fn json<T: Serialize>(network: &Network, slot: u64, data: &T) -> Result<serde_json::Value, SimBeaconError> {
    versioned_json(network.fork_at_slot(slot), data).map_err(|e| SimBeaconError::Encode(e.to_string()))
}

fn query_u64(query: &str, key: &str) -> Option<u64> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).and_then(|(_, v)| v.parse().ok())
}

async fn answer(
    chain: &mut Chain,
    checkpoint: Checkpoint,
    path: &str,
    query: &str,
    ssz: bool,
) -> Result<Reply, SimBeaconError> {
    let network = chain.network.clone();
    const PREFIX: &str = "/eth/v1/beacon/light_client/";
    let Some(endpoint) = path.strip_prefix(PREFIX) else {
        return Ok(match path {
            "/replicatoor/checkpoint" => {
                Reply::Json(serde_json::to_value(checkpoint).map_err(|e| SimBeaconError::Encode(e.to_string()))?)
            }
            _ => Reply::Status(StatusCode::NOT_FOUND, format!("no route {path}")),
        });
    };
    match endpoint {
        "finality_update" | "optimistic_update" => {
            let update = chain.head_update().await?;
            let slot = update.attested_header.beacon.slot;
            Ok(match (endpoint, ssz) {
                ("finality_update", true) => Reply::Ssz(finality_update(&update).as_ssz_bytes()),
                ("finality_update", false) => Reply::Json(json(&network, slot, &finality_update(&update))?),
                (_, true) => Reply::Ssz(optimistic_update(&update).as_ssz_bytes()),
                (_, false) => Reply::Json(json(&network, slot, &optimistic_update(&update))?),
            })
        }
        "updates" => {
            let (Some(start), Some(count)) = (query_u64(query, "start_period"), query_u64(query, "count")) else {
                return Ok(Reply::Status(StatusCode::BAD_REQUEST, "start_period and count required".into()));
            };
            chain.follow_reorgs().await?;
            let head = chain.head().await?;
            let mut updates = Vec::new();
            for period in start..start.saturating_add(count.min(MAX_REQUEST_LIGHT_CLIENT_UPDATES)) {
                match chain.period_update(period, head).await? {
                    Some(update) => updates.push(update),
                    None => break,
                }
            }
            if ssz {
                let body = encode_updates_ssz(&network, &updates).map_err(|e| SimBeaconError::Encode(e.to_string()))?;
                return Ok(Reply::Ssz(body));
            }
            let items =
                updates.iter().map(|u| json(&network, u.attested_header.beacon.slot, u)).collect::<Result<_, _>>()?;
            Ok(Reply::Json(serde_json::Value::Array(items)))
        }
        _ => {
            let Some(root) = endpoint.strip_prefix("bootstrap/").and_then(|r| Root::from_str(r).ok()) else {
                return Ok(Reply::Status(StatusCode::NOT_FOUND, format!("no route {path}")));
            };
            let Some(&n) = chain.by_root.get(&root) else {
                return Ok(Reply::Status(StatusCode::NOT_FOUND, format!("unknown block root {root}")));
            };
            let block = chain.block(n).await?;
            let period = network.period_at_slot(block.header.beacon.slot);
            let bootstrap = block.bootstrap(chain.committee(period).committee());
            Ok(if ssz {
                Reply::Ssz(bootstrap.as_ssz_bytes())
            } else {
                Reply::Json(json(&network, block.header.beacon.slot, &bootstrap)?)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_mapping_keeps_signatures_in_the_attested_period() {
        let network = network();
        let period_slots = network.preset.slots_per_sync_committee_period();
        for period in 0..4 {
            let first = first_block_from_slot(period * period_slots);
            let last = first_block_from_slot((period + 1) * period_slots) - 1;
            assert_eq!(network.period_at_slot(slot_of_block(first)), period);
            assert_eq!(network.period_at_slot(slot_of_block(last) + 1), period, "signature slot of the last block");
            assert_eq!(network.period_at_slot(slot_of_block(last + 1)), period + 1);
            assert_eq!(last + 1 - first, if period == 0 { 31 } else { 32 });
        }
        // Finality: the first block of the epoch two before, always an earlier block; none early on.
        assert_eq!(finalized_block(&network, 10), None);
        for n in 11..200 {
            let f = finalized_block(&network, n).expect("finalized");
            let (epoch, f_slot) = (network.epoch_at_slot(slot_of_block(n)), slot_of_block(f));
            assert_eq!(f_slot, (epoch - 2) * network.preset.slots_per_epoch(), "block {n}");
            assert!(f < n);
        }
    }

    #[test]
    fn network_is_its_own() {
        let network = network();
        network.validate().unwrap();
        assert_ne!(network.genesis_validators_root, Network::mainnet().genesis_validators_root);
        assert_eq!(network.fork_at_slot(0), replicatoor_beacon::Fork::Electra);
        // The TD clock is ahead of any slot a dev chain reaches.
        assert!(slot_of_block(100_000_000) < 1_700_000_000 / network.seconds_per_slot);
    }
}
