//! Owner and developer operations: deploy, propose/revoke references, set policy, approve genesis,
//! rotate the cluster key. Approving genesis or a rotation runs the same verification pipeline a holder runs on requests. Each owner
//! transaction is built once, in [`call`]: sent here, or printed as calldata by `admin --calldata-only`.

use alloy::{
    eips::BlockId,
    network::EthereumWallet,
    primitives::{Address, B256, U256},
    providers::ProviderBuilder,
    rpc::types::Filter,
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use anyhow::Context as _;
use replicatoor_chain::{
    bindings::UpgradeOperator::{self as Op},
    Chain, ChainError, TxOutcome,
};
use replicatoor_core::{
    attest::{
        pipeline::{self, Context, Decision, References},
        GenesisBinding, Verifier,
    },
    crypto::eip712,
    protocol::{Deployment, Policy, RefKind},
};

/// Deploy UpgradeOperator; returns its address and deployment block.
pub async fn deploy(
    rpc_url: &str,
    deployer: PrivateKeySigner,
    owner: Address,
    widening_delay: u64,
    policy: Policy,
) -> anyhow::Result<(Address, u64)> {
    let url = rpc_url.parse().with_context(|| format!("RPC URL {rpc_url:?}"))?;
    let provider = ProviderBuilder::new().wallet(EthereumWallet::from(deployer)).connect_http(url);
    let builder = Op::deploy_builder(&provider, owner, widening_delay, policy.into());
    let receipt =
        builder.send().await.context("sending the deployment")?.get_receipt().await.context("deployment receipt")?;
    let address = receipt.contract_address.context("deployment receipt has no contract address")?;
    Ok((address, receipt.block_number.unwrap_or_default()))
}

/// The owner's transactions, as ABI calls to the contract.
pub mod call {
    use super::{Op, Policy, B256};
    use alloy::primitives::Bytes;

    /// `description`: the OS description document (PROTOCOL.md §4.5), or empty.
    pub fn propose_os(m: &[[u8; 48]; 4], note: &str, description: &[u8]) -> Op::proposeOsReferenceCall {
        let [mrtd, rtmr0, rtmr1, rtmr2] = m.map(|x| Bytes::copy_from_slice(&x));
        let description = Bytes::copy_from_slice(description);
        Op::proposeOsReferenceCall { mrtd, rtmr0, rtmr1, rtmr2, note: note.to_string(), description }
    }

    /// `compose`: the app-compose.json whose sha256 is `compose_hash` (published on chain), or empty.
    pub fn propose_app(compose_hash: &[u8; 32], note: &str, compose: &[u8]) -> Op::proposeAppReferenceCall {
        Op::proposeAppReferenceCall {
            composeHash: (*compose_hash).into(),
            note: note.to_string(),
            compose: Bytes::copy_from_slice(compose),
        }
    }

    pub fn revoke(id: B256, note: &str) -> Op::revokeReferenceCall {
        Op::revokeReferenceCall { id, note: note.to_string() }
    }

    pub fn set_policy(p: Policy, note: &str) -> Op::setPolicyCall {
        Op::setPolicyCall { p: p.into(), note: note.to_string() }
    }

    /// Approve the proposal the owner verified: its cluster and epoch are named, so the contract refuses
    /// any other proposal under that id (a reorg, a lying RPC).
    pub fn approve_genesis(g: &super::VerifiedGenesis, note: &str) -> Op::approveGenesisCall {
        Op::approveGenesisCall {
            proposalId: g.proposal_id,
            clusterAddress: g.cluster,
            forEpoch: g.epoch,
            osRef: g.os_ref,
            appRef: g.app_ref,
            note: note.to_string(),
        }
    }

    /// End reference `id` at `expires_at` (unix seconds): a superseded version's grace period.
    pub fn schedule_expiry(id: B256, expires_at: u64, note: &str) -> Op::scheduleExpiryCall {
        Op::scheduleExpiryCall { id, expiresAt: expires_at, note: note.to_string() }
    }

    pub fn execute_bootstrap() -> Op::executeBootstrapCall {
        Op::executeBootstrapCall {}
    }

    pub fn cancel_bootstrap(note: &str) -> Op::cancelBootstrapCall {
        Op::cancelBootstrapCall { note: note.to_string() }
    }

    pub fn start_rotation(note: &str) -> Op::startRotationCall {
        Op::startRotationCall { note: note.to_string() }
    }

    pub fn cancel_rotation(note: &str) -> Op::cancelRotationCall {
        Op::cancelRotationCall { note: note.to_string() }
    }

    /// Approve the rotation proposal the owner verified, naming its cluster and epoch as
    /// [`approve_genesis`] does.
    pub fn approve_rotation(g: &super::VerifiedGenesis, note: &str) -> Op::approveRotationCall {
        // The same arguments as approveGenesis.
        let Op::approveGenesisCall { proposalId, clusterAddress, forEpoch, osRef, appRef, note } =
            approve_genesis(g, note);
        Op::approveRotationCall { proposalId, clusterAddress, forEpoch, osRef, appRef, note }
    }
}

/// Propose an OS reference (MRTD, RTMR0-2) with its description (or none: empty); returns its id.
pub async fn propose_os(
    chain: &Chain,
    m: [[u8; 48]; 4],
    note: &str,
    description: &[u8],
) -> Result<(B256, TxOutcome), ChainError> {
    let o = chain.send(chain.contract().call_builder(&call::propose_os(&m, note, description))).await?;
    Ok((replicatoor_core::protocol::os_reference_id(&m[0], &m[1], &m[2], &m[3]), o))
}

/// Propose an app reference (compose hash), publishing the compose itself when given (empty: not
/// published); returns its id.
pub async fn propose_app(
    chain: &Chain,
    compose_hash: [u8; 32],
    note: &str,
    compose: &[u8],
) -> Result<(B256, TxOutcome), ChainError> {
    let o = chain.send(chain.contract().call_builder(&call::propose_app(&compose_hash, note, compose))).await?;
    Ok((replicatoor_core::protocol::app_reference_id(&compose_hash), o))
}

pub async fn revoke(chain: &Chain, id: B256, note: &str) -> Result<TxOutcome, ChainError> {
    chain.send(chain.contract().call_builder(&call::revoke(id, note))).await
}

pub async fn schedule_expiry(chain: &Chain, id: B256, expires_at: u64, note: &str) -> Result<TxOutcome, ChainError> {
    chain.send(chain.contract().call_builder(&call::schedule_expiry(id, expires_at, note))).await
}

pub async fn set_policy(chain: &Chain, p: Policy, note: &str) -> Result<TxOutcome, ChainError> {
    chain.send(chain.contract().call_builder(&call::set_policy(p, note))).await
}

struct AtLatest<'a>(&'a Chain);

impl References for AtLatest<'_> {
    type Error = ChainError;
    async fn is_allowed(&self, id: B256, kind: RefKind) -> Result<bool, ChainError> {
        self.0.is_allowed_at(id, kind, BlockId::latest()).await
    }
}

/// A genesis proposal as the owner verified it: what the approval names.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedGenesis {
    pub proposal_id: U256,
    /// The cluster address its quote binds.
    pub cluster: Address,
    /// The epoch its quote binds.
    pub epoch: u64,
    pub os_ref: B256,
    pub app_ref: B256,
}

/// Verify genesis proposal `proposal_id` like a holder verifies a request, then approve it. The first
/// genesis takes effect at once; a re-bootstrap is scheduled for the contract's widening delay.
pub async fn approve_genesis(
    chain: &Chain,
    verifier: &Verifier,
    proposal_id: U256,
    note: &str,
) -> anyhow::Result<TxOutcome> {
    let g = verify_genesis(chain, verifier, proposal_id).await?;
    Ok(chain.send(chain.contract().call_builder(&call::approve_genesis(&g, note))).await?)
}

/// Run a scheduled re-bootstrap whose time has come (anyone may).
pub async fn execute_bootstrap(chain: &Chain) -> Result<TxOutcome, ChainError> {
    chain.send(chain.contract().call_builder(&call::execute_bootstrap())).await
}

/// Verify genesis proposal `proposal_id` like a holder verifies a request (against the policy and
/// references in force now); returns what an approval names: its cluster and epoch (those its quote
/// binds) and the OS and app references its quote runs under.
pub async fn verify_genesis(chain: &Chain, verifier: &Verifier, proposal_id: U256) -> anyhow::Result<VerifiedGenesis> {
    let (block, ev) = proposal_log::<Op::GenesisProposed>(chain, proposal_id, "genesis proposal").await?;
    let binding = GenesisBinding { cluster: ev.cluster, epoch: ev.epoch };
    verify_quote(chain, verifier, proposal_id, block, binding, &ev.quote, &ev.eventLog, "genesis proposal").await
}

/// The latest log of proposal event `E` (indexed by the proposal id) and its block.
async fn proposal_log<E: SolEvent>(chain: &Chain, proposal_id: U256, what: &str) -> anyhow::Result<(u64, E)> {
    let filter =
        Filter::new().address(chain.deployment().contract).event_signature(E::SIGNATURE_HASH).topic1(proposal_id);
    let head = chain.head().await?;
    let logs = replicatoor_chain::scan::get_logs(chain, &filter, 0, head)
        .await
        .with_context(|| format!("reading {what} {proposal_id}"))?;
    let log = logs.last().with_context(|| format!("no {what} {proposal_id} (no {} event)", E::SIGNATURE))?;
    let block = log.block_number.context("proposal log without block")?;
    let ev = log.log_decode::<E>().with_context(|| format!("decoding {}", E::SIGNATURE))?.inner.data;
    Ok((block, ev))
}

/// Run the holder pipeline on a proposal's quote, which must bind `binding` (a genesis report_data,
/// PROTOCOL.md §3.1), at the time of the proposal's block, under the policy and references in force now.
#[allow(clippy::too_many_arguments)]
async fn verify_quote(
    chain: &Chain,
    verifier: &Verifier,
    proposal_id: U256,
    block: u64,
    binding: GenesisBinding,
    quote: &[u8],
    event_log: &[u8],
    what: &str,
) -> anyhow::Result<VerifiedGenesis> {
    let policy = chain.policy_at(BlockId::latest()).await?;
    let now = chain.block(block).await?.timestamp;
    let refs = AtLatest(chain);
    let ctx = Context { deployment: chain.deployment(), verifier, policy, references: &refs, now };
    match pipeline::evaluate(&ctx, binding, quote, event_log).await {
        Decision::Accept(a) => Ok(VerifiedGenesis {
            proposal_id,
            cluster: binding.cluster,
            epoch: binding.epoch,
            os_ref: a.os_ref(),
            app_ref: a.app_ref(),
        }),
        Decision::Refuse(r, detail) => {
            anyhow::bail!("{what} {proposal_id} fails verification (bad quote): {r}: {detail}")
        }
        Decision::Retry(why) | Decision::Abstain(why) => {
            anyhow::bail!("cannot verify {what} {proposal_id} now: {why}")
        }
    }
}

/// Why `admin rotate approve` refuses a proposal before (or instead of) verifying its quote.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RotationRefused {
    /// The contract has no proposal under this id.
    #[error("proposal {0} does not exist")]
    Unknown(U256),
    /// A plain genesis proposal: no cluster endorsed it, so it cannot rotate custody.
    #[error(
        "proposal {0} is not endorsed: it is a genesis proposal, not a rotation proposal (a re-bootstrap goes through \
         `admin approve-genesis`)"
    )]
    NotEndorsed(U256),
    /// The proposal is for another epoch than the next one (custody moved on since, or a later one).
    #[error("proposal {id} is stale: it is for epoch {for_epoch}, the next epoch is {next}")]
    Stale { id: U256, for_epoch: u64, next: u64 },
    /// No rotation to the proposal's epoch is under way (never started, or cancelled).
    #[error("no rotation to epoch {0} is under way (not started, or cancelled): `admin rotate start` first")]
    NoRotation(u64),
    /// Made before the rotation under way started: the owner cancelled the one it was made for.
    #[error("proposal {id} was made before the rotation under way started (its rotation was cancelled): approve a later one")]
    Cancelled { id: U256 },
    /// Its event and the contract's record disagree (a reorg, or a lying RPC).
    #[error(
        "proposal {id}: its RotationProposed event names cluster {event_cluster} for epoch {event_epoch}, the \
         contract records cluster {cluster} for epoch {for_epoch} (a reorg, or the RPC lies)"
    )]
    Mismatch { id: U256, event_cluster: Address, event_epoch: u64, cluster: Address, for_epoch: u64 },
    /// The endorsement was not signed by the cluster in force.
    #[error("proposal {id}: its endorsement is signed by {signer}, not by the current cluster {cluster}")]
    BadEndorsement { id: U256, signer: String, cluster: Address },
}

/// What the contract says about a rotation proposal and the custody it would replace, read at one block.
#[derive(Debug, Clone, Copy)]
pub struct RotationState {
    pub proposal_id: U256,
    /// `genesisProposal(id)`: cluster, forEpoch (0: no such proposal), endorsed.
    pub cluster: Address,
    pub for_epoch: u64,
    pub endorsed: bool,
    /// `epoch()`, `cluster()` and `rotationFor()`.
    pub epoch: u64,
    pub current_cluster: Address,
    pub rotation_for: u64,
    /// `rotationAfter()`: proposals up to this id predate the rotation under way.
    pub rotation_after: U256,
}

impl RotationState {
    /// The checks on the proposal's record, before its event is read: what the contract would refuse.
    pub fn check(&self) -> Result<(), RotationRefused> {
        let id = self.proposal_id;
        if self.for_epoch == 0 {
            return Err(RotationRefused::Unknown(id));
        }
        if !self.endorsed {
            return Err(RotationRefused::NotEndorsed(id));
        }
        let next = self.epoch.saturating_add(1);
        if self.for_epoch != next {
            return Err(RotationRefused::Stale { id, for_epoch: self.for_epoch, next });
        }
        if self.rotation_for != self.for_epoch {
            return Err(RotationRefused::NoRotation(self.for_epoch));
        }
        if id <= self.rotation_after {
            return Err(RotationRefused::Cancelled { id });
        }
        Ok(())
    }

    /// The checks on the proposal's `RotationProposed` event: it is the recorded proposal, and the
    /// current cluster signed its EIP-712 `Rotation` (the contract checked that when it was posted;
    /// checking again here does not trust the contract or the RPC).
    pub fn check_event(&self, dep: &Deployment, ev: &Op::RotationProposed) -> Result<(), RotationRefused> {
        let id = self.proposal_id;
        if ev.cluster != self.cluster || ev.epoch != self.for_epoch {
            return Err(RotationRefused::Mismatch {
                id,
                event_cluster: ev.cluster,
                event_epoch: ev.epoch,
                cluster: self.cluster,
                for_epoch: self.for_epoch,
            });
        }
        let endorsement = eip712::Rotation { epoch: self.for_epoch, cluster: self.cluster };
        match eip712::recover(dep, &endorsement, &ev.signature) {
            Ok(signer) if signer == self.current_cluster => Ok(()),
            Ok(signer) => {
                Err(RotationRefused::BadEndorsement { id, signer: signer.to_string(), cluster: self.current_cluster })
            }
            Err(e) => Err(RotationRefused::BadEndorsement {
                id,
                signer: format!("nobody ({e})"),
                cluster: self.current_cluster,
            }),
        }
    }
}

/// A rotation proposal as the owner verified it: what `approveRotation` names, and the cluster that
/// endorsed it (the one it replaces).
#[derive(Debug, Clone, Copy)]
pub struct VerifiedRotation {
    pub proposal: VerifiedGenesis,
    pub previous_cluster: Address,
}

/// Verify rotation proposal `proposal_id`: the contract's record (endorsed, for the next epoch, a
/// rotation to it under way), its endorsement (signed by the cluster in force), then its quote exactly
/// as [`verify_genesis`] does (a genesis report_data binding the new cluster and epoch).
pub async fn verify_rotation(
    chain: &Chain,
    verifier: &Verifier,
    proposal_id: U256,
) -> anyhow::Result<VerifiedRotation> {
    // One block for every read, so the epoch, cluster and rotation belong together.
    let at = BlockId::number(chain.head().await?);
    let c = chain.contract();
    let p = c.genesisProposal(proposal_id).block(at).call().await.context("genesisProposal(id)")?;
    let (current_cluster, epoch) = chain.cluster_at(at).await?;
    let rotation_for = c.rotationFor().block(at).call().await.context("rotationFor()")?;
    let rotation_after = U256::from(c.rotationAfter().block(at).call().await.context("rotationAfter()")?);
    let state = RotationState {
        proposal_id,
        cluster: p.cluster,
        for_epoch: p.forEpoch,
        endorsed: p.endorsed,
        epoch,
        current_cluster,
        rotation_for,
        rotation_after,
    };
    state.check()?;
    let (block, ev) = proposal_log::<Op::RotationProposed>(chain, proposal_id, "rotation proposal").await?;
    state.check_event(&chain.deployment(), &ev)?;
    let binding = GenesisBinding { cluster: ev.cluster, epoch: ev.epoch };
    let proposal =
        verify_quote(chain, verifier, proposal_id, block, binding, &ev.quote, &ev.eventLog, "rotation proposal")
            .await?;
    Ok(VerifiedRotation { proposal, previous_cluster: current_cluster })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::Bytes;

    fn dep() -> Deployment {
        Deployment { chain_id: 31337, contract: Address::repeat_byte(9) }
    }

    /// Epoch 4 run by `current`, a rotation to 5 under way, proposal 2 for `new` endorsed on chain.
    fn state(current: Address, new: Address) -> RotationState {
        RotationState {
            proposal_id: U256::from(2),
            cluster: new,
            for_epoch: 5,
            endorsed: true,
            epoch: 4,
            current_cluster: current,
            rotation_for: 5,
            rotation_after: U256::from(1),
        }
    }

    fn event(s: &RotationState, signer: &PrivateKeySigner) -> Op::RotationProposed {
        let sig =
            eip712::sign(&dep(), &eip712::Rotation { epoch: s.for_epoch, cluster: s.cluster }, signer).expect("signs");
        Op::RotationProposed {
            proposalId: s.proposal_id,
            cluster: s.cluster,
            epoch: s.for_epoch,
            proposer: Address::repeat_byte(3),
            quote: Bytes::new(),
            eventLog: Bytes::new(),
            signature: Bytes::copy_from_slice(&sig),
        }
    }

    #[test]
    fn a_proposal_is_refused_for_each_reason_the_contract_would_refuse_it() {
        let s = state(Address::repeat_byte(1), Address::repeat_byte(2));
        assert_eq!(s.check(), Ok(()));
        let id = s.proposal_id;
        assert_eq!(RotationState { for_epoch: 0, ..s }.check(), Err(RotationRefused::Unknown(id)));
        assert_eq!(RotationState { endorsed: false, ..s }.check(), Err(RotationRefused::NotEndorsed(id)));
        assert_eq!(
            RotationState { epoch: 5, ..s }.check(),
            Err(RotationRefused::Stale { id, for_epoch: 5, next: 6 }),
            "custody moved on since"
        );
        assert_eq!(RotationState { rotation_for: 0, ..s }.check(), Err(RotationRefused::NoRotation(5)), "cancelled");
        let restarted = RotationState { rotation_after: U256::from(2), ..s };
        assert_eq!(restarted.check(), Err(RotationRefused::Cancelled { id: U256::from(2) }), "made before a restart");
        let not_endorsed = RotationRefused::NotEndorsed(id).to_string();
        assert!(not_endorsed.contains("not endorsed") && not_endorsed.contains("approve-genesis"), "{not_endorsed}");
    }

    #[test]
    fn the_endorsement_must_be_the_current_clusters_signature_of_this_proposal() {
        let current = PrivateKeySigner::random();
        let s = state(current.address(), Address::repeat_byte(2));
        let ev = event(&s, &current);
        assert_eq!(s.check_event(&dep(), &ev), Ok(()));
        // Signed by another key (an old cluster's, say).
        let other = PrivateKeySigner::random();
        assert!(matches!(
            s.check_event(&dep(), &event(&s, &other)),
            Err(RotationRefused::BadEndorsement { signer, .. }) if signer == other.address().to_string()
        ));
        // For another deployment, or garbage.
        let foreign = Deployment { chain_id: 1, ..dep() };
        assert!(matches!(s.check_event(&foreign, &ev), Err(RotationRefused::BadEndorsement { .. })));
        let junk = Op::RotationProposed { signature: Bytes::from(vec![7; 10]), ..ev.clone() };
        assert!(matches!(s.check_event(&dep(), &junk), Err(RotationRefused::BadEndorsement { .. })));
        // The event names another cluster than the contract records.
        let moved = Op::RotationProposed { cluster: Address::repeat_byte(8), ..ev };
        assert!(matches!(s.check_event(&dep(), &moved), Err(RotationRefused::Mismatch { .. })));
    }
}
