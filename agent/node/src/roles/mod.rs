//! The agent's roles. `run` picks one from the durable state: a node holding the bundle serves as a
//! holder; otherwise it founds the cluster (`--genesis`) or requests the secret, then serves.

pub mod genesis;
pub mod holder;
pub mod requester;

use crate::{
    config::{ProviderKind, RunConfig},
    provider::QuoteProvider,
    store::Store,
    telemetry::{Role, Telemetry},
};
use anyhow::Context as _;
use replicatoor_chain::{anchor::Anchor, Backoff, Chain, ChainError};
use replicatoor_core::{attest::Verifier, crypto::SecretBundle};
use sha2::{Digest, Sha256};
use std::{future::Future, sync::Arc, time::Duration};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// Longest wait between tries while the chain is unavailable, in every role (the holder's loop and
/// [`Agent::retrying`] used 15 s and 10 s before they shared this).
pub const CHAIN_RETRY_CAP: Duration = Duration::from_secs(15);

/// How `run` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Stopped on request (SIGTERM/ctrl-c) or after installing with `--exit-after-install`.
    Done,
    /// This node's request was refused on chain, with this code (one this build may not know).
    Refused { code: u8 },
}

/// Everything a role needs.
pub struct Agent {
    pub cfg: RunConfig,
    pub chain: Chain,
    pub store: Store,
    pub verifier: Verifier,
    pub provider: QuoteProvider,
    pub shutdown: watch::Receiver<bool>,
    pub telemetry: Arc<Telemetry>,
    /// The verified chain view, when the deployment is pinned (None: the RPC's view, unverified).
    pub verified: Option<replicatoor_chain::anchor::Verified>,
}

/// The verified chain view the pinned deployment names (its RPC checked to be on the pinned chain), or
/// none, said loudly, for a node started with `--dangerously-trust-rpc`.
async fn verified_view(
    cfg: &RunConfig,
    chain: &Chain,
    store: &Store,
) -> anyhow::Result<Option<replicatoor_chain::anchor::Verified>> {
    Ok(match &cfg.deployment {
        None => {
            warn!(target: "replicatoor", "!!! --dangerously-trust-rpc: no pinned deployment; this node releases and installs on whatever its RPC says. Dev/test only. !!!");
            None
        }
        Some(d) => {
            // The RPC is transport: it must at least be on the pinned chain.
            anyhow::ensure!(
                chain.deployment() == d.deployment(),
                "the RPC serves chain {} but the pinned deployment is chain {} (contract {})",
                chain.deployment().chain_id,
                d.chain_id,
                d.contract
            );
            if d.is_simulated() {
                warn!(target: "replicatoor", "!!! SIMULATED BEACON trust root: chain state is authenticated by a dev sync committee. Dev/test only. !!!");
            } else if d.trust.mode_name() == "beacon-custom" {
                warn!(target: "replicatoor", "beacon trust root on a custom network spelled out in the pin: this release vouches only for the built-in networks' parameters");
            }
            let a = Anchor::new(d, cfg.beacon_url.as_deref(), Box::new(store.clone()), cfg.confirmations).await?;
            info!(target: "replicatoor", trust = %d.trust, "chain view verified against the pinned trust root");
            Some(replicatoor_chain::verified::VerifiedView::new(chain.clone(), a, d.max_age_secs()))
        }
    })
}

impl Agent {
    /// Build from configuration: open state, connect, set up quote source and verifier.
    pub async fn new(cfg: RunConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<Self> {
        let store = Store::open(&cfg.state_dir).context("opening the state directory")?;
        let chain = Chain::connect(&cfg.rpc_url, cfg.contract, Some(cfg.sender_key.clone()))
            .await
            .context("connecting to the chain")?;
        // A deployment of another protocol version would revert every answer this agent signs (the
        // EIP-712 domain version is part of each signature) and read its storage wrongly: say so now.
        let version =
            chain.contract().eip712Domain().call().await.context("reading the contract's EIP-712 domain")?.version;
        anyhow::ensure!(
            version == replicatoor_core::crypto::eip712::DOMAIN_VERSION,
            "the contract at {} speaks protocol version {version} (its EIP-712 domain version); this agent speaks \
             version {}: run the agent release that matches the deployment (PROTOCOL.md §7)",
            cfg.contract,
            replicatoor_core::crypto::eip712::DOMAIN_VERSION
        );
        let provider = match cfg.quote_provider {
            ProviderKind::Dstack => QuoteProvider::dstack(cfg.dstack_socket.as_ref()),
            ProviderKind::Simulated => {
                let path = cfg.app_compose.as_ref().context("simulated quotes need --app-compose")?;
                let compose = std::fs::read(path).with_context(|| format!("reading app compose {}", path.display()))?;
                crate::simulated::quote_provider(Sha256::digest(&compose).into())?
            }
        };
        match &cfg.measurement {
            crate::config::Measurement::SelfMeasured { .. } => {
                info!(target: "replicatoor", configuration = %cfg.measurement.describe(), "security settings are the measured compose's")
            }
            crate::config::Measurement::NotSelfMeasured => {
                warn!(target: "replicatoor", "!!! configuration NOT self-measured: the simulated quote provider has no measured compose, so nothing checks these settings against an approved one. Dev/test only. !!!")
            }
        }
        if provider.is_simulated() {
            warn!(target: "replicatoor", "!!! SIMULATED QUOTES: this node attests with a public test PKI; no hardware guarantee. Dev/test only. !!!");
        }
        let collateral = crate::collateral::source(
            cfg.collateral_dir.as_deref(),
            cfg.pccs_url.as_deref(),
            &cfg.state_dir.join("collateral"),
        )
        .context("setting up the PCCS client")?;
        // Signature checks run off the async workers, so a burst of verification leaves the chain
        // reads, the junk triage and the HTTP endpoint running on the other core.
        let mut verifier = Verifier::new(collateral).with_offload(Arc::new(BlockInPlace));
        if cfg.allow_simulated_quotes {
            warn!(target: "replicatoor", "!!! --allow-simulated-quotes: this holder will serve SIMULATED quotes when the contract policy allows them. Never in production. !!!");
            verifier = crate::simulated::trust(verifier)?;
        }
        let verified = verified_view(&cfg, &chain, &store).await?;
        let dep = chain.deployment();
        let telemetry = Arc::new(Telemetry::new(dep.chain_id, dep.contract.to_string(), provider.is_simulated()));
        if let Some(addr) = cfg.http_addr {
            if let Err(e) = crate::http::serve(addr, telemetry.clone()).await {
                warn!(target: "replicatoor", %addr, error = %e, "health/metrics endpoint not started");
            }
        }
        telemetry.update(|s| s.secret_installed = store.installed().ok().flatten().is_some());
        telemetry.set_configuration(&cfg.measurement);
        telemetry.set_trust_mode(cfg.deployment.as_ref().map_or(crate::telemetry::UNVERIFIED, |d| d.trust.mode_name()));
        Ok(Agent { cfg, chain, store, verifier, provider, shutdown, telemetry, verified })
    }

    /// True once shutdown was requested.
    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleep for `d`, waking early on shutdown. Returns false when shutting down.
    pub async fn pause(&self, d: Duration) -> bool {
        let mut rx = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.stopping(),
            _ = rx.wait_for(|s| *s) => false,
        }
    }

    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.cfg.poll_interval_ms)
    }

    /// The wait between tries while the chain is unavailable: the poll interval, doubling up to
    /// [`CHAIN_RETRY_CAP`].
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.poll(), CHAIN_RETRY_CAP)
    }

    /// Install what `bundle` gives the app (the keyring, then the secret, each atomically), then hold
    /// it: stored (flushed) with the installed secret's SHA-256, which it returns. A crash between the
    /// two (the fault tests' `crash_at`) installs the same files again on restart.
    pub fn hold(&self, bundle: &SecretBundle, crash_at: Option<&str>) -> anyhow::Result<String> {
        let path = &self.cfg.secret_file;
        let digest = crate::install::install_bundle(path, bundle)
            .with_context(|| format!("installing the secret at {}", path.display()))?;
        if let Some(name) = crash_at {
            crate::failpoint::hit(name);
        }
        self.store.set_bundle(bundle)?;
        self.store.set_installed(&digest)?;
        Ok(digest)
    }

    /// The contract's logs that `filter` matches, from block `from` (at most the head) to the head, as
    /// the RPC serves them (with retries). Untrusted: a caller decides nothing on them that it does not
    /// prove or check again.
    pub async fn contract_logs(
        &self,
        what: &str,
        filter: alloy::rpc::types::Filter,
        from: u64,
    ) -> anyhow::Result<Vec<alloy::rpc::types::Log>> {
        let chain = &self.chain;
        let filter = filter.address(chain.deployment().contract);
        let head = self.retrying("reading the head", || chain.head()).await?;
        let from = from.min(head);
        self.retrying(what, || replicatoor_chain::scan::get_logs(chain, &filter, from, head)).await
    }

    /// Run `f` until it succeeds or fails for good; transient chain faults back off and retry.
    pub async fn retrying<T, F, Fut>(&self, what: &str, mut f: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ChainError>>,
    {
        let mut backoff = self.backoff();
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() => {
                    self.telemetry.rpc_error();
                    let delay = backoff.next_delay();
                    warn!(target: "replicatoor", what, error = %e, retry_in_ms = delay.as_millis() as u64, "chain unavailable, retrying");
                    if !self.pause(delay).await {
                        anyhow::bail!("shutting down while {what}");
                    }
                }
                Err(e) => return Err(anyhow::Error::new(e).context(what.to_string())),
            }
        }
    }
}

/// Run the agent until shutdown (or until a new node's request is refused).
pub async fn run(cfg: RunConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<Exit> {
    let agent = Agent::new(cfg, shutdown).await?;
    let dep = agent.chain.deployment();
    info!(target: "replicatoor", chain_id = dep.chain_id, contract = %dep.contract, sender = ?agent.chain.sender(), "agent starting");
    if agent.store.bundle()?.is_none() {
        let role = if agent.cfg.genesis { Role::Genesis } else { Role::Requester };
        agent.telemetry.update(|s| s.role = role);
        let outcome = if agent.cfg.genesis { genesis::run(&agent).await? } else { requester::run(&agent).await? };
        if outcome != Exit::Done || agent.cfg.exit_after_install || agent.stopping() {
            return Ok(outcome);
        }
    }
    loop {
        agent.telemetry.update(|s| {
            s.role = Role::Holder;
            s.secret_installed = true;
        });
        match holder::run(&agent).await? {
            holder::Left::Stopped => return Ok(Exit::Done),
            // The new epoch's bundle is stored and installed: serve it.
            holder::Left::Rotated => {}
            holder::Left::Superseded { epoch } => {
                if !rotated_to(&agent, epoch).await? {
                    let why = format!("epoch {epoch} began with a custody reset (a re-bootstrap), not a rotation: its secret has no link to this node's, so this node keeps its secret and stops serving. To join the new cluster (the app then gets its new secret), remove the state directory");
                    error!(target: "replicatoor", epoch, "{why}");
                    agent.telemetry.update(|s| {
                        s.role = Role::Stopped;
                        s.stopped = Some(why);
                    });
                    while agent.pause(Duration::from_secs(3600)).await {}
                    return Ok(Exit::Done);
                }
                warn!(target: "replicatoor", epoch, "a rotation replaced this node's cluster: it stops serving and requests the new epoch like a new node");
                agent.store.supersede(epoch)?;
                agent.telemetry.update(|s| s.role = Role::Requester);
                let outcome = requester::run(&agent).await?;
                if outcome != Exit::Done || agent.stopping() {
                    return Ok(outcome);
                }
            }
        }
    }
}

/// Whether epoch `epoch` began with a rotation (`ClusterRotated`), as the RPC's logs say. Only whether a
/// superseded holder asks for it rests on this: the bundle it would install must still carry this
/// node's own secret in its keyring (requester.rs), so a log an RPC invents changes nothing else.
async fn rotated_to(agent: &Agent, epoch: u64) -> anyhow::Result<bool> {
    use alloy::{primitives::B256, rpc::types::Filter, sol_types::SolEvent as _};
    use replicatoor_chain::bindings::UpgradeOperator as Op;
    let filter = Filter::new()
        .event_signature(Op::ClusterRotated::SIGNATURE_HASH)
        .topic1(B256::from(alloy::primitives::U256::from(epoch)));
    let logs = agent.contract_logs("looking for the rotation to the new epoch", filter, agent.cfg.start_block).await?;
    Ok(!logs.is_empty())
}

/// The TD's clocks, the one port every time on the trust path comes through
/// (`replicatoor_core::clock`): the wall clock the host sets, and the monotonic clock it cannot.
pub(crate) static CLOCK: replicatoor_core::clock::SystemClock = replicatoor_core::clock::SystemClock;

/// This TD's wall clock, in unix seconds: the freshness bound of a trusted header (`max_age_secs`) is
/// judged against it (never against a time the chain or the RPC reports). The host sets it, so it
/// only stops stale views an honest host shows; a release needs the batch's commitment (relay.rs).
pub(crate) fn unix_now() -> u64 {
    use replicatoor_core::clock::Clock as _;
    CLOCK.unix()
}

/// Runs the verifier's CPU-bound work with `tokio::task::block_in_place`: the worker thread running
/// it hands its other tasks to the runtime first, so a verification never stalls them. In place on a
/// current-thread runtime (and outside any runtime), where that is not possible.
struct BlockInPlace;

impl replicatoor_core::attest::verifier::Offload for BlockInPlace {
    fn run(&self, work: &mut dyn FnMut()) {
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi {
            tokio::task::block_in_place(work)
        } else {
            work()
        }
    }
}
