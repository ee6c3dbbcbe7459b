//! Reading a deployment's history: every log of the contract over a block range (fetched in
//! adaptive ranges by [`replicatoor_chain::scan`]), each with its block time and, for governance
//! events, the transaction sender.

use super::AuditError;
use alloy::{
    eips::BlockId,
    network::TransactionResponse,
    primitives::{Address, B256},
    providers::Provider,
    rpc::types::{Filter, Log},
};
use replicatoor_chain::{
    bindings::UpgradeOperator::UpgradeOperatorEvents as Ev,
    scan::{ScanConfig, ScanProgress},
    Chain, ChainError,
};
use replicatoor_core::protocol::Deployment;
use std::{
    collections::{BTreeMap, HashMap},
    io::Write as _,
    sync::Mutex,
    time::Instant,
};
use tracing::{debug, warn};

/// Where a log sits in the chain. Ordered by (block, log index), the order events happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub block: u64,
    pub log_index: u64,
    /// Timestamp of the block.
    pub time: u64,
    pub tx: B256,
}

impl Pos {
    pub fn key(&self) -> (u64, u64) {
        (self.block, self.log_index)
    }
}

/// One decoded log of the contract.
#[derive(Debug, Clone)]
pub struct Entry {
    pub pos: Pos,
    pub event: Ev,
}

/// Everything the audit knows about a deployment, read from chain data only.
#[derive(Debug)]
pub struct History {
    pub deployment: Deployment,
    pub from_block: u64,
    pub to_block: u64,
    /// Timestamp of `to_block`: "now" for the report.
    pub to_time: u64,
    /// Every decoded log, in chain order.
    pub entries: Vec<Entry>,
    /// Logs of the contract that did not decode as one of its events.
    pub undecoded: usize,
    /// `from` of each governance transaction (when it could be read).
    pub actors: HashMap<B256, Address>,
}

/// Scan settings.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    pub from_block: Option<u64>,
    pub to_block: Option<u64>,
    /// Draw a progress line on stderr (only when stderr is a terminal).
    pub progress: bool,
}

/// Block timestamps, cached.
pub struct Blocks<'a> {
    chain: &'a Chain,
    cache: Mutex<BTreeMap<u64, u64>>,
}

impl<'a> Blocks<'a> {
    pub fn new(chain: &'a Chain) -> Self {
        Blocks { chain, cache: Mutex::new(BTreeMap::new()) }
    }

    fn cached(&self, n: u64) -> Option<u64> {
        self.cache.lock().ok().and_then(|c| c.get(&n).copied())
    }

    fn remember(&self, n: u64, t: u64) {
        if let Ok(mut c) = self.cache.lock() {
            c.insert(n, t);
        }
    }

    pub async fn time(&self, n: u64) -> Result<u64, AuditError> {
        if let Some(t) = self.cached(n) {
            return Ok(t);
        }
        let t = self.chain.block(n).await?.timestamp;
        self.remember(n, t);
        Ok(t)
    }

    /// The first block in `lo..=hi` whose timestamp is at least `ts` (binary search), if any.
    pub async fn first_at_or_after(&self, ts: u64, mut lo: u64, hi: u64) -> Result<Option<u64>, AuditError> {
        if self.time(hi).await? < ts {
            return Ok(None);
        }
        let mut hi = hi;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.time(mid).await? >= ts {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(Some(lo))
    }
}

/// Read the whole history of the deployment `chain` is bound to.
pub async fn collect(chain: &Chain, blocks: &Blocks<'_>, opts: ScanOptions) -> Result<History, AuditError> {
    let head = chain.head().await?;
    let to = opts.to_block.unwrap_or(head).min(head);
    let from = match opts.from_block {
        Some(b) => b,
        None => deployment_block(chain, head).await.unwrap_or_else(|| {
            warn!(target: "replicatoor::audit", "cannot find the deployment block (no archive state?); scanning from block 0");
            0
        }),
    };
    if from > to {
        return Err(AuditError::Range { from, to });
    }
    let filter = Filter::new().address(chain.deployment().contract);
    let logs = scan(chain, &filter, from, to, opts.progress).await?;
    let mut entries = Vec::with_capacity(logs.len());
    let mut undecoded = 0;
    for log in logs {
        if log.removed {
            continue;
        }
        let (Some(block), Some(log_index), Some(tx)) = (log.block_number, log.log_index, log.transaction_hash) else {
            return Err(AuditError::Rpc("the provider returned a log without block, index or transaction".into()));
        };
        let time = match log.block_timestamp {
            Some(t) => {
                blocks.remember(block, t);
                t
            }
            None => blocks.time(block).await?,
        };
        match Ev::decode_any_version(&log.inner) {
            Ok(event) => entries.push(Entry { pos: Pos { block, log_index, time, tx }, event }),
            Err(e) => {
                debug!(target: "replicatoor::audit", block, log_index, error = %e, "log does not decode");
                undecoded += 1;
            }
        }
    }
    entries.sort_by_key(|e| e.pos.key());
    let actors = actors(chain, &entries).await;
    let to_time = blocks.time(to).await?;
    Ok(History { deployment: chain.deployment(), from_block: from, to_block: to, to_time, entries, undecoded, actors })
}

/// True for events an owner (or a proposer) causes; their transaction sender is worth a lookup.
pub fn is_governance(ev: &Ev) -> bool {
    matches!(
        ev,
        Ev::Deployed(_)
            | Ev::ReferenceProposed(_)
            | Ev::ReferenceRevoked(_)
            | Ev::ReferenceDescribed(_)
            | Ev::PolicySet(_)
            | Ev::OwnershipTransferStarted(_)
            | Ev::OwnershipTransferred(_)
            | Ev::ClusterBootstrapped(_)
            | Ev::CustodyReset(_)
            | Ev::BootstrapScheduled(_)
            | Ev::ReferenceExpiryScheduled(_)
            | Ev::BootstrapCancelled(_)
            | Ev::RotationStarted(_)
            | Ev::RotationCancelled(_)
            | Ev::ClusterRotated(_)
    )
}

/// `from` of every governance transaction. Governance is rare, so one `eth_getTransactionByHash`
/// each is cheap; request and delivery senders are already in their events.
async fn actors(chain: &Chain, entries: &[Entry]) -> HashMap<B256, Address> {
    let mut out = HashMap::new();
    for e in entries.iter().filter(|e| is_governance(&e.event)) {
        if out.contains_key(&e.pos.tx) {
            continue;
        }
        match chain.provider().get_transaction_by_hash(e.pos.tx).await {
            Ok(Some(tx)) => {
                out.insert(e.pos.tx, tx.from());
            }
            Ok(None) => warn!(target: "replicatoor::audit", tx = %e.pos.tx, "transaction not found; actor unknown"),
            Err(err) => {
                warn!(target: "replicatoor::audit", tx = %e.pos.tx, error = %err, "cannot read transaction; actor unknown")
            }
        }
    }
    out
}

/// The first block at which the contract has code (binary search over `eth_getCode`). Needs
/// historical state; `None` when the node does not serve it.
async fn deployment_block(chain: &Chain, head: u64) -> Option<u64> {
    let contract = chain.deployment().contract;
    let has_code = |n: u64| async move {
        chain.provider().get_code_at(contract).block_id(BlockId::number(n)).await.map(|c| !c.is_empty())
    };
    let (mut lo, mut hi) = (0, head);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match has_code(mid).await {
            Ok(true) => hi = mid,
            Ok(false) => lo = mid + 1,
            Err(e) => {
                debug!(target: "replicatoor::audit", block = mid, error = %e, "eth_getCode at a past block failed");
                return None;
            }
        }
    }
    Some(lo)
}

/// Every log matching `filter` in `from..=to`, through the chain crate's adaptive scan (the provider's
/// range limit is learned once), with a progress line on stderr when asked and stderr is a terminal.
pub async fn scan(chain: &Chain, filter: &Filter, from: u64, to: u64, progress: bool) -> Result<Vec<Log>, AuditError> {
    use std::io::IsTerminal;
    let show = progress && std::io::stderr().is_terminal();
    let started = Instant::now();
    let draw = |p: ScanProgress| {
        if show {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\rscanning blocks {from}..{to}: {:5.1}%  {} logs", p.fraction() * 100.0, p.logs);
            let _ = err.flush();
        }
    };
    let logs = replicatoor_chain::scan::scan(chain, filter, from, to, ScanConfig::default(), draw).await.map_err(
        |e| match e {
            // Even single-block ranges failed: keep the audit's own error for it.
            ChainError::Rpc(m) => AuditError::Rpc(m),
            other => AuditError::Chain(other),
        },
    )?;
    if show {
        eprintln!("\rscanned blocks {from}..{to}: {} logs in {:.1?}          ", logs.len(), started.elapsed());
    }
    Ok(logs)
}
