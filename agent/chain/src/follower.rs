//! Follows the contract's logs from a checkpoint, `confirmations` blocks behind the head.
//!
//! Each step returns the logs of one block range and the new checkpoint (number + hash); the caller
//! handles the logs and then persists the checkpoint. A checkpoint whose block hash changed means a
//! reorg: the follower rewinds and the caller re-processes (handling is idempotent).

use super::client::{Chain, ChainError};
use alloy::{
    primitives::B256,
    rpc::types::{Filter, Log},
};
use tracing::{debug, warn};

/// The last block whose logs were fully handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub block: u64,
    pub hash: B256,
}

/// What one step of the follower found.
#[derive(Debug)]
pub enum Step {
    /// Logs in `from..=to`; after handling them, persist `checkpoint`.
    Logs { from: u64, to: u64, logs: Vec<Log>, checkpoint: Checkpoint, head: u64 },
    /// The checkpoint's block was replaced: persist `checkpoint` (earlier) and go on.
    Reorg { dropped: Checkpoint, checkpoint: Checkpoint },
    /// Nothing new at the required depth.
    Idle { head: u64 },
}

/// Follower settings.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// Blocks a log must be buried under before it is acted on (0 = act at the head).
    pub confirmations: u64,
    /// Most blocks handled in one step. The scan reads them in spans the provider accepts.
    pub max_range: u64,
    /// How far to rewind on a reorg.
    pub reorg_rewind: u64,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        FollowerConfig { confirmations: 2, max_range: 2_000, reorg_rewind: 64 }
    }
}

/// Steps through the chain for one event filter.
pub struct Follower {
    chain: Chain,
    filter: Filter,
    cfg: FollowerConfig,
}

impl Follower {
    /// `filter` names the address and event signatures; its block range is set per step.
    pub fn new(chain: Chain, filter: Filter, cfg: FollowerConfig) -> Self {
        Follower { chain, filter, cfg }
    }

    /// Set the most blocks one step handles from now on (at least 1).
    pub fn set_max_range(&mut self, blocks: u64) {
        self.cfg.max_range = blocks.max(1);
    }

    /// The most blocks one step handles.
    pub fn max_range(&self) -> u64 {
        self.cfg.max_range
    }

    /// One step from `checkpoint` (or from `start_block` when there is none).
    pub async fn step(&self, checkpoint: Option<Checkpoint>, start_block: u64) -> Result<Step, ChainError> {
        let head = self.chain.head().await?;
        if let Some(cp) = checkpoint {
            let hash = self.chain.block(cp.block).await?.hash;
            if hash != cp.hash {
                let back = cp.block.saturating_sub(self.cfg.reorg_rewind).max(start_block.saturating_sub(1));
                let back_hash = self.chain.block(back).await?.hash;
                let to = Checkpoint { block: back, hash: back_hash };
                warn!(target: "replicatoor::follower", dropped = cp.block, rewind_to = back, "reorg detected, rewinding");
                return Ok(Step::Reorg { dropped: cp, checkpoint: to });
            }
        }
        let safe = head.saturating_sub(self.cfg.confirmations);
        let from = checkpoint.map_or(start_block, |c| c.block + 1);
        if from > safe {
            return Ok(Step::Idle { head });
        }
        let to = safe.min(from + self.cfg.max_range.max(1) - 1);
        let logs = self.logs(from, to).await?;
        let hash = self.chain.block(to).await?.hash;
        debug!(target: "replicatoor::follower", from, to, head, logs = logs.len(), "scanned");
        Ok(Step::Logs { from, to, logs, checkpoint: Checkpoint { block: to, hash }, head })
    }

    /// Every matching log in `from..=to`, in spans the provider accepts ([`crate::scan`]).
    pub async fn logs(&self, from: u64, to: u64) -> Result<Vec<Log>, ChainError> {
        crate::scan::get_logs(&self.chain, &self.filter, from, to).await
    }
}
