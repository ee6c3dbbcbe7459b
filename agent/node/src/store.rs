//! Durable agent state in sled. Every write that precedes an external action is flushed first, so a
//! crash at any point resumes from what was really done.

use alloy::primitives::{TxHash, B256, U256};
use replicatoor_chain::follower::Checkpoint;
use replicatoor_core::crypto::{bundle::SecretBundle, hpke::HpkeKeypair};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::Path;
use zeroize::Zeroizing;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database: {0}")]
    Db(#[from] sled::Error),
    #[error("state record {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("state directory {path}: {reason}")]
    Dir { path: String, reason: String },
}

/// The node's own pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnRequest {
    pub request_id: U256,
    pub block: u64,
    pub tx_hash: TxHash,
}

/// The genesis proposal this node made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnGenesis {
    pub proposal_id: U256,
    pub epoch: u64,
    pub block: u64,
}

/// What this holder did about a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// We delivered (tx mined at `block`).
    Served { tx_hash: TxHash, block: u64 },
    /// We refused (tx mined at `block`).
    Refused { reason: u8, tx_hash: TxHash, block: u64 },
    /// Someone else answered first.
    AlreadyAnswered { status: u8 },
    /// Not answered yet: a local fault; evaluated again at `retry_at_ms` (unix ms), one back-off
    /// after the last of `attempts` evaluations.
    Deferred {
        why: String,
        #[serde(default)]
        attempts: u32,
        #[serde(default)]
        retry_at_ms: u64,
    },
    /// This holder could not judge the request (see `Decision::Abstain`) and left it to others.
    Abstained { why: String },
    /// Our answer was sent (`tx_hash`) and its receipt is awaited; replaced by what became of it. After
    /// a restart it is checked like an answer on chain (answered again if the request is pending).
    Sent { tx_hash: TxHash },
    /// Another holder ranks first for this request: this holder answers it only if it is still
    /// pending once the chain reaches `due_block` (its backup delay), deciding it then as any other.
    Backup { due_block: u64 },
    /// Refusal was not posted: the per-step refusal budget was spent (junk flood). Evaluated again
    /// at `retry_at_ms` (unix ms), like a deferred request.
    Throttled {
        reason: u8,
        #[serde(default)]
        attempts: u32,
        #[serde(default)]
        retry_at_ms: u64,
    },
}

/// Whether a holder step may need to look at a request with this outcome again: all but one it
/// abstained from (left to other holders for good).
fn watched(outcome: &Outcome) -> bool {
    !matches!(outcome, Outcome::Abstained { .. })
}

/// A request record: where it was and what we did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub block: u64,
    pub outcome: Outcome,
}

/// The light client's verified store (a header it never goes back from).
const LIGHT_CLIENT: &str = "light_client";
const CHECKPOINT: &str = "checkpoint";
const HPKE_SK: &str = "hpke_sk";
const OWN_REQUEST: &str = "own_request";
const OWN_GENESIS: &str = "own_genesis";
const BUNDLE: &str = "bundle";
const PENDING_BUNDLE: &str = "pending_bundle";
const ROTATION_BUNDLE: &str = "rotation_bundle";
const ROTATION_PROPOSED: &str = "rotation_proposed";
const SUPERSEDED: &str = "superseded";
const INSTALLED: &str = "installed";

/// The agent's state database (clones share the same database).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    requests: sled::Tree,
    watch: sled::Tree,
    /// Request id → its request key (`keccak256(pk ‖ requester)`), under which the contract keeps its status.
    request_keys: sled::Tree,
}

impl Store {
    /// Open (or create) the state under `dir`, with owner-only permissions.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let dir_err = |reason: String| StoreError::Dir { path: dir.display().to_string(), reason };
        std::fs::create_dir_all(dir).map_err(|e| dir_err(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| dir_err(e.to_string()))?;
        }
        let db = sled::Config::new().path(dir.join("state.sled")).mode(sled::Mode::HighThroughput).open()?;
        let meta = db.open_tree("meta")?;
        let requests = db.open_tree("requests")?;
        let watch = db.open_tree("watch")?;
        let request_keys = db.open_tree("request_keys")?;
        let store = Store { db, meta, requests, watch, request_keys };
        if store.watch.is_empty() && !store.requests.is_empty() {
            store.rebuild_watch()?;
        }
        Ok(store)
    }

    /// Make every write so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn put_json<T: Serialize>(&self, key: &str, v: &T) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec(v).map_err(|e| StoreError::Corrupt { key: key.into(), reason: e.to_string() })?;
        self.meta.insert(key, bytes)?;
        self.flush()
    }

    fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.meta.get(key)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { key: key.into(), reason: e.to_string() }),
        }
    }

    /// The light client's verified store (`replicatoor_chain::beacon::LightClient::to_persisted`).
    pub fn light_client(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(LIGHT_CLIENT)?.map(|v| v.to_vec()))
    }
    pub fn set_light_client(&self, bytes: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(LIGHT_CLIENT, bytes)?;
        self.flush()
    }

    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.get_json(CHECKPOINT)
    }
    pub fn set_checkpoint(&self, cp: Checkpoint) -> Result<(), StoreError> {
        self.put_json(CHECKPOINT, &cp)
    }

    /// The node's HPKE key pair, if made.
    pub fn hpke_keys(&self) -> Result<Option<HpkeKeypair>, StoreError> {
        let Some(v) = self.meta.get(HPKE_SK)? else { return Ok(None) };
        let corrupt = |reason: &str| StoreError::Corrupt { key: HPKE_SK.into(), reason: reason.into() };
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(v.as_ref().try_into().map_err(|_| corrupt("not 32 bytes"))?);
        HpkeKeypair::from_secret(&bytes).map(Some).map_err(|_| corrupt("not an X25519 key"))
    }
    /// Persist the HPKE key pair (flushed: it must exist on disk before its public key is posted).
    pub fn set_hpke_keys(&self, kp: &HpkeKeypair) -> Result<(), StoreError> {
        self.meta.insert(HPKE_SK, kp.secret_bytes().as_slice())?;
        self.flush()
    }

    pub fn own_request(&self) -> Result<Option<OwnRequest>, StoreError> {
        self.get_json(OWN_REQUEST)
    }
    pub fn set_own_request(&self, r: &OwnRequest) -> Result<(), StoreError> {
        self.put_json(OWN_REQUEST, r)
    }

    pub fn own_genesis(&self) -> Result<Option<OwnGenesis>, StoreError> {
        self.get_json(OWN_GENESIS)
    }
    pub fn set_own_genesis(&self, g: &OwnGenesis) -> Result<(), StoreError> {
        self.put_json(OWN_GENESIS, g)
    }

    fn get_bundle(&self, key: &str) -> Result<Option<SecretBundle>, StoreError> {
        let Some(v) = self.meta.get(key)? else { return Ok(None) };
        SecretBundle::decode(&v).map(Some).map_err(|e| StoreError::Corrupt { key: key.into(), reason: e.to_string() })
    }

    /// Stored and flushed before anything is done with it (posted, installed).
    fn put_bundle(&self, key: &str, b: &SecretBundle) -> Result<(), StoreError> {
        self.meta.insert(key, b.encode().as_slice())?;
        self.flush()
    }

    /// The secret bundle, once this node holds it.
    pub fn bundle(&self) -> Result<Option<SecretBundle>, StoreError> {
        self.get_bundle(BUNDLE)
    }
    pub fn set_bundle(&self, b: &SecretBundle) -> Result<(), StoreError> {
        self.put_bundle(BUNDLE, b)
    }

    /// A genesis node's bundle before the owner approves it (not yet a holder).
    pub fn pending_bundle(&self) -> Result<Option<SecretBundle>, StoreError> {
        self.get_bundle(PENDING_BUNDLE)
    }
    pub fn set_pending_bundle(&self, b: &SecretBundle) -> Result<(), StoreError> {
        self.put_bundle(PENDING_BUNDLE, b)
    }

    /// A holder's next-epoch bundle while its rotation proposal waits for the owner (PROTOCOL.md
    /// §5.4): kept until the chain's epoch reaches it, since the owner may approve it at any time
    /// until then and its key would then be the only one the contract accepts.
    pub fn rotation_bundle(&self) -> Result<Option<SecretBundle>, StoreError> {
        self.get_bundle(ROTATION_BUNDLE)
    }
    pub fn set_rotation_bundle(&self, b: &SecretBundle) -> Result<(), StoreError> {
        self.put_bundle(ROTATION_BUNDLE, b)
    }
    /// The proposal the rotation bundle was posted in, once its receipt came.
    pub fn rotation_proposed(&self) -> Result<Option<U256>, StoreError> {
        self.get_json(ROTATION_PROPOSED)
    }
    pub fn set_rotation_proposed(&self, proposal_id: U256) -> Result<(), StoreError> {
        self.put_json(ROTATION_PROPOSED, &proposal_id)
    }
    /// The chain's epoch passed the rotation bundle (it became the bundle, or another won).
    pub fn clear_rotation(&self) -> Result<(), StoreError> {
        self.meta.remove(ROTATION_BUNDLE)?;
        self.meta.remove(ROTATION_PROPOSED)?;
        self.flush()
    }

    /// The epoch whose cluster superseded this holder's bundle, once this node started requesting it.
    pub fn superseded(&self) -> Result<Option<u64>, StoreError> {
        self.get_json(SUPERSEDED)
    }
    /// A holder superseded by epoch `epoch` requests it like a new node: forget the request that
    /// brought it the old epoch (and any key), once, so that it posts a new one, and after a restart
    /// follows that new one.
    pub fn supersede(&self, epoch: u64) -> Result<(), StoreError> {
        if self.superseded()? != Some(epoch) {
            self.forget_request()?;
            self.put_json(SUPERSEDED, &epoch)?;
        }
        Ok(())
    }

    /// Forget this node's request and its HPKE key, so that it makes a new key and posts a new
    /// request (the same key and sender could not be used again): after a refusal, instead of reading
    /// the same refusal for ever, and when a rotation superseded the epoch the request brought.
    pub fn forget_request(&self) -> Result<(), StoreError> {
        self.meta.remove(OWN_REQUEST)?;
        self.meta.remove(HPKE_SK)?;
        self.flush()
    }

    /// Once the bundle is held and installed: drop the HPKE private key (it opened the one delivery
    /// it was made for) and a genesis node's pending bundle (now the bundle), so a later copy of the
    /// state directory holds the secret once, not three times. sled frees, not overwrites: the state
    /// directory belongs on the TD's encrypted disk either way.
    pub fn erase_install_secrets(&self) -> Result<(), StoreError> {
        self.meta.remove(HPKE_SK)?;
        self.meta.remove(PENDING_BUNDLE)?;
        self.flush()
    }

    /// Whether the secret file was installed (sha256 of what was written).
    pub fn installed(&self) -> Result<Option<String>, StoreError> {
        self.get_json(INSTALLED)
    }
    pub fn set_installed(&self, sha256_hex: &str) -> Result<(), StoreError> {
        self.put_json(INSTALLED, &sha256_hex)
    }

    pub fn request(&self, id: U256) -> Result<Option<RequestRecord>, StoreError> {
        match self.requests.get(id.to_be_bytes::<32>())? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { key: format!("request {id}"), reason: e.to_string() }),
        }
    }
    /// Remember request `id`'s key (the contract looks its status up by it). Not flushed on its own:
    /// it is written before the request's first record, whose write flushes both.
    pub fn set_request_key(&self, id: U256, key: B256) -> Result<(), StoreError> {
        self.request_keys.insert(id.to_be_bytes::<32>(), key.as_slice())?;
        Ok(())
    }

    /// Request `id`'s key, if it was seen.
    pub fn request_key(&self, id: U256) -> Result<Option<B256>, StoreError> {
        match self.request_keys.get(id.to_be_bytes::<32>())? {
            None => Ok(None),
            Some(v) => B256::try_from(v.as_ref()).map(Some).map_err(|_| StoreError::Corrupt {
                key: format!("request key {id}"),
                reason: format!("{} bytes, not 32", v.len()),
            }),
        }
    }

    pub fn set_request(&self, id: U256, r: &RequestRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(r)
            .map_err(|e| StoreError::Corrupt { key: format!("request {id}"), reason: e.to_string() })?;
        // Index first: a crash in between leaves an index entry without its new record (looked at
        // once more, harmless), never a record a step would miss.
        if watched(&r.outcome) {
            self.watch.insert(id.to_be_bytes::<32>(), &[])?;
        } else {
            self.watch.remove(id.to_be_bytes::<32>())?;
        }
        self.requests.insert(id.to_be_bytes::<32>(), bytes)?;
        self.flush()
    }

    /// The request records a holder step must look at again (deferred, throttled, and answers it
    /// still checks for reorgs), in id order: an index, so a step's work does not grow with every
    /// request ever seen.
    pub fn watched(&self) -> Result<Vec<(U256, RequestRecord)>, StoreError> {
        let mut out = Vec::new();
        for k in self.watch.iter().keys() {
            let id = U256::from_be_slice(&k?);
            if let Some(rec) = self.request(id)? {
                out.push((id, rec));
            }
        }
        Ok(out)
    }

    /// Stop looking at `id` in [`Store::watched`] (until its record is written again).
    pub fn unwatch(&self, id: U256) -> Result<(), StoreError> {
        self.watch.remove(id.to_be_bytes::<32>())?;
        Ok(())
    }

    /// Index every record a step may need to look at again: for a store written before the index.
    fn rebuild_watch(&self) -> Result<(), StoreError> {
        for (id, rec) in self.requests()? {
            if watched(&rec.outcome) {
                self.watch.insert(id.to_be_bytes::<32>(), &[])?;
            }
        }
        self.flush()
    }

    /// All request records, in id order.
    pub fn requests(&self) -> Result<Vec<(U256, RequestRecord)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.requests.iter() {
            let (k, v) = kv?;
            let id = U256::from_be_slice(&k);
            let rec = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt { key: format!("request {id}"), reason: e.to_string() })?;
            out.push((id, rec));
        }
        Ok(out)
    }
}

/// The light client's store kept in the node's state (`replicatoor_chain::anchor`).
impl replicatoor_chain::anchor::LightClientStore for Store {
    fn load(&self) -> Result<Option<Vec<u8>>, String> {
        self.light_client().map_err(|e| e.to_string())
    }
    fn save(&self, bytes: &[u8]) -> Result<(), String> {
        self.set_light_client(bytes).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Open the store in `dir`, waiting for the previous handle's background flush to release its
    /// file lock (sled lets go of it shortly after the drop; a loaded machine makes that visible).
    fn reopen(dir: &Path) -> Store {
        let start = std::time::Instant::now();
        loop {
            match Store::open(dir) {
                Ok(s) => return s,
                Err(e) if start.elapsed() < std::time::Duration::from_secs(10) && e.to_string().contains("lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                Err(e) => panic!("opening {}: {e}", dir.display()),
            }
        }
    }
    use alloy::primitives::B256;

    /// A holder step looks only at requests that may still need it, not at every request it has
    /// ever seen: after a flood of 10,000 junk requests (refused or abstained) it looks at the few
    /// that are deferred or throttled, and at answers it has not yet stopped watching.
    #[test]
    fn a_step_looks_at_pending_work_not_at_every_request_ever_seen() {
        let dir = std::env::temp_dir().join(format!("replicatoor-store-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = reopen(&dir);
        let refused = |n: u64| Outcome::Refused { reason: 2, tx_hash: B256::repeat_byte(n as u8), block: n };
        for n in 0..10_000u64 {
            let outcome = if n % 2 == 0 { refused(n) } else { Outcome::Abstained { why: "simulated".into() } };
            s.set_request(U256::from(n), &RequestRecord { block: n, outcome }).unwrap();
        }
        // Answers are watched until the step stops watching them (out of the re-answer window).
        for n in (0..10_000u64).step_by(2) {
            s.unwatch(U256::from(n)).unwrap();
        }
        let deferred = Outcome::Deferred { why: "collateral".into(), attempts: 1, retry_at_ms: 0 };
        s.set_request(U256::from(20_000), &RequestRecord { block: 9, outcome: deferred.clone() }).unwrap();
        s.set_request(
            U256::from(20_001),
            &RequestRecord { block: 9, outcome: Outcome::Throttled { reason: 2, attempts: 1, retry_at_ms: 0 } },
        )
        .unwrap();
        let ids: Vec<U256> = s.watched().unwrap().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [U256::from(20_000), U256::from(20_001)]);
        // A record written again is watched again; the index survives a reopen, and an old store
        // without one gets it rebuilt.
        s.set_request(U256::from(4), &RequestRecord { block: 4, outcome: deferred }).unwrap();
        drop(s);
        let s = reopen(&dir);
        assert_eq!(s.watched().unwrap().len(), 3);
        s.watch.clear().unwrap();
        drop(s);
        let s = reopen(&dir);
        assert_eq!(
            s.watched().unwrap().len(),
            5_000 + 2,
            "rebuilt: every record but the abstained ones (4 is among them)"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn state_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("replicatoor-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let kp = HpkeKeypair::generate();
        {
            let s = reopen(&dir);
            assert!(s.hpke_keys().unwrap().is_none());
            s.set_hpke_keys(&kp).unwrap();
            s.set_checkpoint(Checkpoint { block: 7, hash: B256::repeat_byte(1) }).unwrap();
            s.set_request_key(U256::from(3), B256::repeat_byte(0x33)).unwrap();
            s.set_request(U256::from(3), &RequestRecord { block: 5, outcome: Outcome::AlreadyAnswered { status: 2 } })
                .unwrap();
        }
        let s = reopen(&dir);
        assert_eq!(s.hpke_keys().unwrap().unwrap().public(), kp.public());
        assert_eq!(s.checkpoint().unwrap().unwrap().block, 7);
        assert_eq!(s.requests().unwrap().len(), 1);
        assert_eq!(s.request_key(U256::from(3)).unwrap(), Some(B256::repeat_byte(0x33)), "flushed with the record");
        assert_eq!(s.request_key(U256::from(4)).unwrap(), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn erasing_install_secrets_drops_the_hpke_key_and_pending_bundle_and_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("replicatoor-store-erase-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let bundle = SecretBundle::new(Zeroizing::new([7; 32]), 1, Zeroizing::new(vec![9; 16])).unwrap();
        {
            let s = reopen(&dir);
            s.set_hpke_keys(&HpkeKeypair::generate()).unwrap();
            s.set_pending_bundle(&bundle).unwrap();
            s.set_bundle(&bundle).unwrap();
            s.erase_install_secrets().unwrap();
        }
        let s = reopen(&dir);
        assert!(s.hpke_keys().unwrap().is_none());
        assert!(s.pending_bundle().unwrap().is_none());
        assert!(s.bundle().unwrap().is_some(), "the bundle itself stays");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
