//! The EIP-7892 blob schedule a network carries. Its own leaf: the network holds it and the codec's
//! fork digests (`codec/digest.rs`) read it, so neither module imports the other for it. It only
//! enters Fulu-and-later fork digests, the labels of an SSZ `updates` body: no rule of the store reads
//! it, and it is not counted on the trust path (TRUST.md, section 3).

use serde::{Deserialize, Serialize};

/// One entry of the EIP-7892 blob schedule. Whether a network's schedule is usable is
/// `blob_schedule_problem` (`codec/digest.rs`), which [`crate::network::Network::validate`] asks last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobScheduleEntry {
    /// First epoch of these parameters.
    pub epoch: u64,
    /// `MAX_BLOBS_PER_BLOCK` from that epoch on.
    pub max_blobs_per_block: u64,
}

/// A blob schedule from `(epoch, max_blobs_per_block)` pairs, as the built-in networks write it.
pub(crate) fn blobs(entries: &[(u64, u64)]) -> Vec<BlobScheduleEntry> {
    entries.iter().map(|&(epoch, max_blobs_per_block)| BlobScheduleEntry { epoch, max_blobs_per_block }).collect()
}
