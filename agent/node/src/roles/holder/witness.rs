//! Witness RPCs (`--witness-rpc-url`): before a delivery leaves, every witness must show the primary
//! RPC's decision block, request and contract state. A cross-check for unpinned dev setups (SECURITY.md):
//! it can only hold a delivery back, never let one through, so it is not on the trust path (TRUST.md);
//! with a pinned deployment the gate decides on proven state whatever the witnesses say.

use crate::roles::Agent;
use alloy::{eips::BlockId, rpc::types::Filter, sol_types::SolEvent};
use replicatoor_chain::{bindings::UpgradeOperator as Op, state::request_of, Chain, ChainError};
use replicatoor_core::{attest::AcceptedRequest, crypto::SecretBundle, gate::Request, protocol::RefKind};

/// Every witness RPC must show the same decision block, the same request and the same contract
/// state (cluster, policy, both references allowed) as the primary RPC, so that one lying RPC cannot
/// make this holder release the secret.
pub(super) async fn agree(
    agent: &Agent,
    bundle: &SecretBundle,
    request: &Request,
    accepted: &AcceptedRequest,
    decide_at: u64,
) -> Result<(), String> {
    if agent.cfg.witness_rpc_urls.is_empty() {
        return Ok(());
    }
    let primary = &agent.chain;
    let block = request.block;
    let decide_hash = primary.block(decide_at).await.map_err(|e| e.to_string())?.hash;
    let request_hash = primary.block(block).await.map_err(|e| e.to_string())?.hash;
    let at = BlockId::number(decide_at);
    for url in &agent.cfg.witness_rpc_urls {
        let host = url.split('/').nth(2).unwrap_or(url);
        let w = Chain::connect(url, primary.deployment().contract, None).await.map_err(|e| format!("{host}: {e}"))?;
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(format!("{host}: {what} differs")) };
        check(w.deployment() == primary.deployment(), "chain id")?;
        let e = |err: ChainError| format!("{host}: {err}");
        check(w.block(decide_at).await.map_err(e)?.hash == decide_hash, "decision block hash")?;
        check(w.block(block).await.map_err(e)?.hash == request_hash, "request block hash")?;
        let filter = Filter::new()
            .address(primary.deployment().contract)
            .event_signature(Op::SecretRequested::SIGNATURE_HASH)
            .topic1(request.binding.request_id)
            .from_block(block)
            .to_block(block);
        let logs = replicatoor_chain::scan::get_logs(&w, &filter, block, block).await.map_err(e)?;
        let same = logs
            .iter()
            .filter_map(|l| l.log_decode::<Op::SecretRequested>().ok())
            .any(|l| request_of(&l.inner.data, block) == *request);
        check(same, "request event")?;
        check(w.cluster_at(at).await.map_err(e)?.0 == bundle.cluster_address(), "cluster")?;
        check(w.policy_at(at).await.map_err(e)? == *accepted.policy(), "policy")?;
        check(w.is_allowed_at(accepted.os_ref(), RefKind::Os, at).await.map_err(e)?, "OS reference status")?;
        check(w.is_allowed_at(accepted.app_ref(), RefKind::App, at).await.map_err(e)?, "app reference status")?;
    }
    Ok(())
}
