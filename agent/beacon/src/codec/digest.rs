//! The fork labels on the wire: a JSON body's `version` names its fork, an SSZ `updates` item's
//! 4-byte fork digest names its. The decoder checks the label against the fork the network
//! schedules at the object's slot, but that is a consistency check for clear errors only: the
//! verifier derives every fork-dependent rule from the slot itself (see the parent module), and the
//! signing domain from the fork version (`Network::sync_committee_domain_at_signature_slot`).

use sha2::{Digest, Sha256};

use crate::blob::BlobScheduleEntry;
use crate::codec::DecodeError;
use crate::network::{Fork, ForkEntry, Network};
use crate::types::Root;

impl Fork {
    /// The lowercase name used by the beacon API's `version` field.
    pub const fn name(self) -> &'static str {
        match self {
            Fork::Phase0 => "phase0",
            Fork::Altair => "altair",
            Fork::Bellatrix => "bellatrix",
            Fork::Capella => "capella",
            Fork::Deneb => "deneb",
            Fork::Electra => "electra",
            Fork::Fulu => "fulu",
        }
    }

    /// Parse a beacon-API `version` string (the JSON envelope's fork label).
    pub fn from_name(name: &str) -> Result<Fork, DecodeError> {
        Fork::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| DecodeError::UnknownForkName { name: name.to_owned() })
    }
}

impl core::fmt::Display for Fork {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl Network {
    /// What is wrong with the blob schedule, if anything: epochs must not decrease, and it is required
    /// whenever Fulu is scheduled (an Electra entry first, then `BLOB_SCHEDULE`).
    pub(crate) fn blob_schedule_problem(&self) -> Option<&'static str> {
        if self.blob_schedule.windows(2).any(|pair| pair[1].epoch < pair[0].epoch) {
            return Some("blob schedule epochs must not decrease");
        }
        if self.forks.iter().any(|f| f.fork == Fork::Fulu) && self.blob_schedule.is_empty() {
            return Some("fulu is scheduled, so the blob schedule (electra entry first) is required");
        }
        None
    }

    /// The fork this network schedules at a slot: what a label is checked against. Not on the trust
    /// path: the store takes each rule from the slot itself (`in_force_at`), never from this.
    pub fn fork_at_slot(&self, slot: u64) -> Fork {
        self.entry_at_epoch(self.epoch_at_slot(slot)).fork
    }

    /// Every fork digest a server of this network can put in front of an SSZ item, with its fork.
    ///
    /// Before Fulu a digest is `fork_data_root[:4]`. From Fulu the spec (EIP-7892) xors in the hash
    /// of the blob parameters in force, so one fork has a digest per blob-schedule entry; the
    /// plain digest of a Fulu version is accepted too, since it is derived from the same version
    /// and GVR and some servers may still emit it.
    pub fn fork_digests(&self) -> Vec<([u8; 4], Fork)> {
        let mut out = Vec::new();
        for (i, entry) in self.forks.iter().enumerate() {
            let base = self.fork_data_root(entry.version);
            out.push((first4(&base), entry.fork));
            if entry.fork >= Fork::Fulu {
                let end = self.forks.get(i + 1).map_or(u64::MAX, |next| next.epoch);
                // Blob parameters in force at the fork's first epoch, and at every later schedule
                // entry that starts before the next fork.
                let mut epochs = vec![entry.epoch];
                epochs.extend(self.blob_schedule.iter().map(|b| b.epoch).filter(|&e| e > entry.epoch && e < end));
                for epoch in epochs {
                    out.push((self.digest_for(entry, epoch), entry.fork));
                }
            }
        }
        out
    }

    /// Spec `get_blob_parameters(epoch)`: the latest schedule entry at or before `epoch`, else the
    /// first (Electra) entry.
    fn blob_parameters(&self, epoch: u64) -> Option<BlobScheduleEntry> {
        self.blob_schedule.iter().rev().find(|b| epoch >= b.epoch).or(self.blob_schedule.first()).copied()
    }

    /// The fork an SSZ item's digest stands for.
    pub fn fork_for_digest(&self, digest: [u8; 4]) -> Result<Fork, DecodeError> {
        self.fork_digests()
            .into_iter()
            .find(|(d, _)| *d == digest)
            .map(|(_, f)| f)
            .ok_or(DecodeError::UnknownForkDigest { digest })
    }

    /// The digest of a fork as emitted at `epoch` (spec `compute_fork_digest`, Fulu-aware).
    pub fn fork_digest_at_epoch(&self, epoch: u64) -> [u8; 4] {
        self.digest_for(self.entry_at_epoch(epoch), epoch)
    }

    fn digest_for(&self, entry: &ForkEntry, epoch: u64) -> [u8; 4] {
        let base = self.fork_data_root(entry.version);
        match self.blob_parameters(epoch) {
            Some(params) if entry.fork >= Fork::Fulu => {
                let mut pre = [0u8; 16];
                pre[..8].copy_from_slice(&params.epoch.to_le_bytes());
                pre[8..].copy_from_slice(&params.max_blobs_per_block.to_le_bytes());
                let mask = Sha256::digest(pre);
                [base[0] ^ mask[0], base[1] ^ mask[1], base[2] ^ mask[2], base[3] ^ mask[3]]
            }
            _ => first4(&base),
        }
    }
}

fn first4(root: &Root) -> [u8; 4] {
    [root[0], root[1], root[2], root[3]]
}
