//! Owner and developer operations: deploy, propose/revoke references, set policy, approve genesis.
//! Approving genesis runs the same verification pipeline a holder runs on requests. Each owner
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
    protocol::{Policy, RefKind},
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
    let filter = Filter::new()
        .address(chain.deployment().contract)
        .event_signature(Op::GenesisProposed::SIGNATURE_HASH)
        .topic1(proposal_id);
    let head = chain.head().await?;
    let logs =
        replicatoor_chain::scan::get_logs(chain, &filter, 0, head).await.context("reading the genesis proposal")?;
    let log = logs.last().with_context(|| format!("no genesis proposal {proposal_id}"))?;
    let block = log.block_number.context("proposal log without block")?;
    let ev = log.log_decode::<Op::GenesisProposed>().context("decoding GenesisProposed")?.inner.data;
    let policy = chain.policy_at(BlockId::latest()).await?;
    let now = chain.block(block).await?.timestamp;
    let refs = AtLatest(chain);
    let ctx = Context { deployment: chain.deployment(), verifier, policy, references: &refs, now };
    let binding = GenesisBinding { cluster: ev.cluster, epoch: ev.epoch };
    match pipeline::evaluate(&ctx, binding, &ev.quote, &ev.eventLog).await {
        Decision::Accept(a) => Ok(VerifiedGenesis {
            proposal_id,
            cluster: ev.cluster,
            epoch: ev.epoch,
            os_ref: a.os_ref(),
            app_ref: a.app_ref(),
        }),
        Decision::Refuse(r, detail) => {
            anyhow::bail!("genesis proposal {proposal_id} fails verification: {r}: {detail}")
        }
        Decision::Retry(why) | Decision::Abstain(why) => {
            anyhow::bail!("cannot verify genesis proposal {proposal_id} now: {why}")
        }
    }
}
