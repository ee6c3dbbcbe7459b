//! Where a node's trusted headers come from, as its pinned deployment says: the beacon light client
//! (its verified store kept in the node's state, so a restart never goes back), or a quorum of pinned
//! RPCs. A node reads chain state only through a [`VerifiedView`] on this anchor. A new kind of
//! trust root (an OP-stack chain's, say) is a [`TrustRoot`] variant, its [`HeaderSource`] in one file,
//! and a variant here.

use crate::{
    beacon::{LightClient, SyncReport},
    deployment::{PinnedDeployment, TrustRoot},
    proof::TrustedHeader,
    verified::{HeaderSource, QuorumSource, VerifiedView, ViewError},
    Chain,
};
use tokio::sync::Mutex;

/// Where the light client's verified store is kept between runs (the node's state directory), so a
/// restart resumes from it and never goes back.
pub trait LightClientStore: Send + Sync {
    /// The persisted store, if there is one.
    fn load(&self) -> Result<Option<Vec<u8>>, String>;
    /// Persist `bytes` durably before returning.
    fn save(&self, bytes: &[u8]) -> Result<(), String>;
}

/// The verified view a holder decides on.
pub type Verified = VerifiedView<Anchor>;

/// The header source of a pinned deployment.
pub enum Anchor {
    /// The beacon light client; its store is persisted after every sync that changed it.
    Beacon { client: Box<Mutex<Synced>>, store: Box<dyn LightClientStore> },
    /// `quorum` of the pinned RPCs agreeing.
    Quorum(QuorumSource),
}

/// The light client, and when its last sync began and what that sync did.
pub struct Synced {
    client: LightClient,
    last: Option<(std::time::Instant, SyncReport)>,
}

impl Anchor {
    /// Build the anchor the deployment pins (`beacon_url`: untrusted transport for a beacon root).
    pub async fn new(
        d: &PinnedDeployment,
        beacon_url: Option<&str>,
        store: Box<dyn LightClientStore>,
        confirmations: u64,
    ) -> anyhow::Result<Anchor> {
        use anyhow::Context as _;
        match &d.trust {
            TrustRoot::Quorum { rpcs, quorum, .. } => {
                let clients = Chain::connect_all(rpcs, d.contract).await?;
                Ok(Anchor::Quorum(QuorumSource::new(clients, *quorum, confirmations)))
            }
            TrustRoot::Beacon { checkpoint, .. } | TrustRoot::SimulatedBeacon { checkpoint, .. } => {
                let network = d.beacon_network()?.context("a beacon trust root has a network")?;
                let url = beacon_url.context("a beacon trust root needs --beacon-url")?;
                let client = match store.load().map_err(anyhow::Error::msg)? {
                    Some(bytes) => LightClient::from_persisted(url, network, *checkpoint, &bytes)
                        .context("the persisted light-client store does not match the pinned deployment")?,
                    None => LightClient::new(url, network, *checkpoint)?,
                };
                Ok(Anchor::Beacon { client: Box::new(Mutex::new(Synced { client, last: None })), store })
            }
        }
    }

    /// What the light client's last sync did (with how many of the sync committee signed the
    /// optimistic header it verified, which an audit reports); `None` before one, or under a quorum.
    pub async fn last_sync(&self) -> Option<SyncReport> {
        let Anchor::Beacon { client, .. } = self else { return None };
        client.lock().await.last.map(|(_, report)| report)
    }
}

impl HeaderSource for Anchor {
    async fn head(&self, now: u64, since: std::time::Instant) -> Result<TrustedHeader, ViewError> {
        match self {
            Anchor::Quorum(q) => q.head(now, since).await,
            Anchor::Beacon { client, store } => {
                let mut synced = client.lock().await;
                // A sync begun at or after `since` is as fresh as one this call would begin:
                // concurrent callers (a batch of deliveries, each re-checked right before it leaves)
                // share it instead of queueing one beacon round trip each.
                if synced.last.is_some_and(|(began, _)| began >= since) {
                    if let Some(h) = synced.client.optimistic() {
                        return Ok(h);
                    }
                }
                let began = std::time::Instant::now();
                let c = &mut synced.client;
                let report = c.sync(now).await.map_err(|e| ViewError::NoHeader(format!("light client: {e}")))?;
                synced.last = Some((began, report));
                let c = &synced.client;
                if report.bootstrapped || report.finalized_advanced || report.optimistic_advanced {
                    store
                        .save(&c.to_persisted())
                        .map_err(|e| ViewError::NoHeader(format!("persisting the light client: {e}")))?;
                }
                // The optimistic head: signed by a sync-committee supermajority, seconds old. Finality
                // (minutes behind) would make every delivery wait for it.
                c.optimistic().ok_or_else(|| ViewError::NoHeader("light client not bootstrapped yet".into()))
            }
        }
    }
}
