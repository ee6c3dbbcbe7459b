//! New node: make and persist keys, post one request, wait for the answer, install the secret.

use super::{Agent, Exit};
use crate::store::OwnRequest;
use alloy::{
    eips::BlockId,
    primitives::{Address, B256, U256},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use anyhow::Context as _;
use replicatoor_chain::anchor::Verified;
use replicatoor_chain::{
    bindings::UpgradeOperator as Op,
    layout::{Reads, Views},
    scan::get_logs,
    verified::ViewError,
    ChainError,
};
use replicatoor_core::{
    crypto::HpkeKeypair,
    delivery::{self, SignedDelivery},
    protocol::{request_key, RequestStatus},
    refusal::Refusal,
};
use tracing::{error, info, info_span, warn, Instrument};

pub async fn run(agent: &Agent) -> anyhow::Result<Exit> {
    let keys = match agent.store.hpke_keys()? {
        Some(k) => k,
        None => {
            let k = HpkeKeypair::generate();
            // Persisted (and flushed) before the public key goes anywhere.
            agent.store.set_hpke_keys(&k)?;
            crate::failpoint::hit("requester_after_keys");
            info!(target: "replicatoor::requester", hpke_pub_key = %hex::encode(k.public()), "new HPKE key pair stored");
            k
        }
    };
    let own = match agent.store.own_request()? {
        Some(r) => r,
        None => post_request(agent, &keys).await?,
    };
    agent.telemetry.update(|s| s.own_request = Some(own.request_id.to_string()));
    let span = info_span!("request", id = %own.request_id);
    wait_and_install(agent, &keys, own).instrument(span).await
}

/// Post `requestSecret` once per key: after a crash between posting and recording, adopt the posted one.
async fn post_request(agent: &Agent, keys: &HpkeKeypair) -> anyhow::Result<OwnRequest> {
    let chain = &agent.chain;
    let sender = chain.sender().context("a sender key is required")?;
    let pk = B256::from(keys.public());
    let existing = agent
        .retrying("checking for an earlier request", || async {
            chain.contract().requestIdOf(pk, sender).call().await.map_err(|e| ChainError::Rpc(e.to_string()))
        })
        .await?;
    if existing != U256::ZERO {
        info!(target: "replicatoor::requester", request_id = %existing, "adopting the request posted before a restart");
        let own = OwnRequest { request_id: existing, block: agent.cfg.start_block, tx_hash: B256::ZERO };
        agent.store.set_own_request(&own)?;
        return Ok(own);
    }
    let report_data = chain.deployment().request_report_data(sender, &keys.public());
    let att = agent.provider.attest(report_data).await.context("getting a quote for the request")?;
    let call = att.request_call(keys.public());
    info!(target: "replicatoor::requester", quote_bytes = call.quote.len(), event_log_bytes = att.event_log.len(), simulated = agent.provider.is_simulated(), "posting requestSecret");
    let outcome = agent
        .retrying("posting requestSecret", || {
            let call = call.clone();
            async move { chain.send(chain.contract().call_builder(&call)).await }
        })
        .await?;
    let request_id = outcome
        .event::<Op::SecretRequested>()
        .map(|e| e.requestId)
        .context("requestSecret receipt has no SecretRequested event")?;
    crate::failpoint::hit("requester_after_post");
    let own = OwnRequest { request_id, block: outcome.block, tx_hash: outcome.tx_hash };
    agent.store.set_own_request(&own)?;
    info!(target: "replicatoor::requester", request_id = %request_id, block = outcome.block, tx = %outcome.tx_hash, gas_used = outcome.gas_used, "request posted");
    Ok(own)
}

/// What the chain says about this node's request at one look.
enum Look {
    /// The request's status (proven, when the deployment is pinned).
    Status(RequestStatus),
    /// Pinned: the id this key and sender requested is another one (the request was mined again
    /// under a new id after a reorg); follow that one.
    Renumbered(U256),
    /// Pinned: the read could not be proven yet (logged and counted); look again later.
    Unproven,
}

async fn look(agent: &Agent, keys: &HpkeKeypair, own: &OwnRequest) -> anyhow::Result<Look> {
    let chain = &agent.chain;
    let sender = chain.sender().context("a sender key is required")?;
    let pk = B256::from(keys.public());
    let Some(v) = &agent.verified else {
        // The RPC's word: one block for both reads, so they describe one state.
        let (id, status) = agent
            .retrying("reading the request status", || async {
                let at = BlockId::number(chain.head().await?);
                let id = chain.contract().requestIdOf(pk, sender).block(at).call().await;
                let id = id.map_err(|e| ChainError::Rpc(e.to_string()))?;
                Ok((id, chain.request_status(request_key(&keys.public(), sender), at).await?))
            })
            .await?;
        return Ok(classify(own, id, status));
    };
    match proven_look(v, pk, sender, own).await {
        Ok(l) => Ok(l),
        Err(e) => {
            agent.telemetry.unproven_read("requester");
            warn!(target: "replicatoor::requester", error = %e, "cannot prove the request's status yet; waiting");
            Ok(Look::Unproven)
        }
    }
}

/// The id this key and sender requested, and that request's status, both proven at a fresh trusted
/// header: a new node follows only its own request, as the chain's consensus says it stands.
async fn proven_look(v: &Verified, pk: B256, sender: Address, own: &OwnRequest) -> Result<Look, ViewError> {
    let head = v.decision_header(super::unix_now(), own.block).await?;
    let request = request_key(&pk.0, sender);
    let storage = v.storage(&head, &Reads::default().request(request)).await?;
    let views = Views(&storage);
    Ok(classify(own, views.request_id(request)?, views.request_status(request)?))
}

/// What the id and status the chain keeps under this node's request key mean for the request it follows.
fn classify(own: &OwnRequest, id: U256, status: RequestStatus) -> Look {
    if id.is_zero() {
        Look::Status(RequestStatus::None)
    } else if id != own.request_id {
        Look::Renumbered(id)
    } else {
        Look::Status(status)
    }
}

/// Looks at a pending request between two reports of why it is still pending.
const PENDING_REPORT_EVERY: u32 = 30;
/// Blocks back (at most) in which a pending report looks for the holders' answers to other requests.
const ANSWER_WINDOW: u64 = 256;

async fn wait_and_install(agent: &Agent, keys: &HpkeKeypair, mut own: OwnRequest) -> anyhow::Result<Exit> {
    let mut pending_looks = 0u32;
    loop {
        let look = look(agent, keys, &own).await?;
        if matches!(look, Look::Status(RequestStatus::Pending)) {
            pending_looks += 1;
            if pending_looks.is_multiple_of(PENDING_REPORT_EVERY) {
                report_pending(agent, &own).await;
            }
        } else if std::mem::take(&mut pending_looks) >= PENDING_REPORT_EVERY {
            agent.telemetry.update(|s| s.pending = None);
        }
        match look {
            Look::Unproven | Look::Status(RequestStatus::Pending) => {
                if !agent.pause(agent.poll()).await {
                    return Ok(Exit::Done);
                }
            }
            Look::Renumbered(id) => {
                warn!(target: "replicatoor::requester", old = %own.request_id, new = %id, "this key's request was mined again under another id (reorg); following it");
                // Its block is unknown: the answer's log is searched from the start block.
                own = OwnRequest { request_id: id, block: agent.cfg.start_block, tx_hash: B256::ZERO };
                agent.store.set_own_request(&own)?;
                agent.telemetry.update(|s| s.own_request = Some(id.to_string()));
            }
            Look::Status(RequestStatus::Delivered) => {
                crate::failpoint::hit("requester_after_delivery_seen");
                if install(agent, keys, own).await? {
                    return Ok(Exit::Done);
                }
                if !agent.pause(agent.poll()).await {
                    return Ok(Exit::Done);
                }
            }
            Look::Status(RequestStatus::None) => {
                // The request's block was reorged away: post again (the key was never used on this chain).
                warn!(target: "replicatoor::requester", request_id = %own.request_id, "request no longer exists on chain (reorg); posting it again");
                let again = post_request(agent, keys).await?;
                return Box::pin(wait_and_install(agent, keys, again)).await;
            }
            Look::Status(RequestStatus::Refused) => match refusal_code(agent, own).await? {
                Some(code) => {
                    let reason = Refusal::from_code(code).map_or("unknown", Refusal::name);
                    error!(target: "replicatoor::requester", code, reason, "request REFUSED by the cluster; a restart posts a new request with a new key");
                    agent.store.forget_request()?;
                    return Ok(Exit::Refused { code });
                }
                None => {
                    if !agent.pause(agent.poll()).await {
                        return Ok(Exit::Done);
                    }
                }
            },
        }
    }
}

/// Why this node's request is still pending, as far as public chain data tells (the RPC's logs: a
/// diagnosis, nothing is decided on it): whether holders are answering other requests meanwhile.
/// Logged, and shown in `/status` as `pending`, once the request is as deep as PROTOCOL.md §2 says
/// (`confirmations + backup_delay_blocks + 2`: the first ranked holder and a backup have had their turn),
/// which also says what to do: keep waiting with this key.
async fn report_pending(agent: &Agent, own: &OwnRequest) {
    let chain = &agent.chain;
    let due = agent.cfg.confirmations + agent.cfg.backup_delay_blocks + 2;
    let diagnosis = async {
        let head = chain.head().await?;
        let depth = head.saturating_sub(own.block);
        if depth < due {
            return Ok(None);
        }
        let from = own.block.max(head.saturating_sub(ANSWER_WINDOW)).min(head);
        let filter = Filter::new()
            .address(chain.deployment().contract)
            .event_signature(vec![Op::SecretDelivered::SIGNATURE_HASH, Op::RequestRefused::SIGNATURE_HASH]);
        let answers = get_logs(chain, &filter, from, head).await?.len();
        Ok::<_, ChainError>(Some((depth, from, answers)))
    };
    let why = match diagnosis.await {
        Ok(None) => return,
        Ok(Some((blocks, from, 0))) => format!(
            "pending for {blocks} blocks; no holder answered any request since block {from}: no holder is running, \
             or all are behind (PROTOCOL.md §2: keep waiting with this key; the operators should check their holders)"
        ),
        Ok(Some((blocks, from, answers))) => format!(
            "pending for {blocks} blocks while holders answered {answers} other requests since block {from}: they are \
             alive and postponing this one (collateral for this platform unavailable to them, an unprovable read) or \
             working through a backlog (PROTOCOL.md §2: keep waiting with this key; the holders' logs say which)"
        ),
        Err(e) => format!("pending; the holders' recent answers could not be read: {e}"),
    };
    warn!(target: "replicatoor::requester", request_id = %own.request_id, why = %why, "request still pending");
    agent.telemetry.update(|s| s.pending = Some(why));
}

async fn event_logs<E: SolEvent>(agent: &Agent, own: OwnRequest) -> anyhow::Result<Vec<alloy::rpc::types::Log>> {
    // A request adopted after a restart is searched from its own block.
    let filter = Filter::new().event_signature(E::SIGNATURE_HASH).topic1(own.request_id);
    agent.contract_logs("reading the answer's log", filter, own.block).await
}

/// The refusal's code. Pinned: from the `RequestRefused` event in its block's proven receipts (None
/// while that cannot be proven: the node does not give up on an unproven refusal).
async fn refusal_code(agent: &Agent, own: OwnRequest) -> anyhow::Result<Option<u8>> {
    let logs = event_logs::<Op::RequestRefused>(agent, own).await?;
    let Some(log) = logs.last() else {
        warn!(target: "replicatoor::requester", "the request is refused but its RequestRefused log is not served yet; waiting");
        return Ok(None);
    };
    let Some(v) = &agent.verified else {
        return Ok(Some(log.log_decode::<Op::RequestRefused>().context("decoding RequestRefused")?.inner.data.reason));
    };
    let block = log.block_number.context("refusal log without a block number")?;
    let rpc_code = log.log_decode::<Op::RequestRefused>().context("decoding RequestRefused")?.inner.data.reason;
    let proven = async {
        let head = v.decision_header(super::unix_now(), block).await?;
        match v.events_in_block::<Op::RequestRefused>(&head, block).await {
            Ok(events) => Ok(events.into_iter().find(|e| e.requestId == own.request_id).map(|e| e.reason)),
            // Beyond the link range: the refusal itself was proven (the status); only its code,
            // which changes nothing but the message, is the RPC's.
            Err(e) if e.is_unlinkable() => Ok(Some(rpc_code)),
            Err(e) => Err(e),
        }
    };
    match proven.await {
        Ok(Some(code)) => Ok(Some(code)),
        Ok(None) => {
            warn!(target: "replicatoor::requester", block, "the RPC's refusal log is not in its block's proven receipts; waiting");
            Ok(None)
        }
        Err(e) => {
            agent.telemetry.unproven_read("requester");
            warn!(target: "replicatoor::requester", block, error = %e, "cannot prove the refusal yet; waiting");
            Ok(None)
        }
    }
}

/// The delivery for our request in block `block`, from the block's receipts rebuilt to its receipts
/// root, and the cluster address proven in that block's state: both linked to a trusted header.
///
/// A block too far below the newest trusted header to link (a node that comes back more than the
/// history contract's window later) takes the RPC's delivery `ev` and the cluster proven at that
/// header: the status was proven delivered, and only the cluster key signs deliveries, so a forged
/// one fails `delivery::open` (as does a real one after a re-bootstrap: the node then keeps waiting).
async fn proven_delivery(
    v: &Verified,
    ev: &Op::SecretDelivered,
    block: u64,
) -> Result<Option<(Op::SecretDelivered, alloy::primitives::Address)>, ViewError> {
    let head = v.decision_header(super::unix_now(), block).await?;
    let at = match v.header_of(&head, block).await {
        Ok(at) => at,
        Err(e) if e.is_unlinkable() => {
            let storage = v.storage(&head, &Reads::state()).await?;
            return Ok(Some((ev.clone(), Views(&storage).cluster()?)));
        }
        Err(e) => return Err(e),
    };
    let Some(ev) = v.events_at::<Op::SecretDelivered>(&at).await?.into_iter().find(|e| e.requestId == ev.requestId)
    else {
        return Ok(None);
    };
    let storage = v.storage(&at, &Reads::state()).await?;
    Ok(Some((ev, Views(&storage).cluster()?)))
}

/// Check the delivery against the chain's cluster, open it, install the file, then keep the bundle.
/// False when the delivery vanished (reorg) between reading the status and reading its log.
async fn install(agent: &Agent, keys: &HpkeKeypair, own: OwnRequest) -> anyhow::Result<bool> {
    let logs = event_logs::<Op::SecretDelivered>(agent, own).await?;
    let Some(log) = logs.last() else {
        warn!(target: "replicatoor::requester", "the delivery is no longer on chain (reorg); waiting for it again");
        return Ok(false);
    };
    let block = log.block_number.context("delivery log without a block number")?;
    let ev = log.log_decode::<Op::SecretDelivered>().context("decoding SecretDelivered")?.inner.data;
    let (ev, cluster) = match &agent.verified {
        // Pinned: the delivery as its block's receipts prove it, and the cluster proven at that block.
        Some(v) => match proven_delivery(v, &ev, block).await {
            Ok(Some(proven)) => proven,
            Ok(None) => {
                warn!(target: "replicatoor::requester", block, "the RPC's delivery log is not in its block's proven receipts; not installing");
                return Ok(false);
            }
            Err(e) => {
                agent.telemetry.unproven_read("requester");
                warn!(target: "replicatoor::requester", block, error = %e, "cannot prove the delivery yet; not installing");
                return Ok(false);
            }
        },
        None => {
            let (cluster, _) = agent
                .retrying("reading the cluster address", || agent.chain.cluster_at(BlockId::number(block)))
                .await?;
            (ev, cluster)
        }
    };
    let d = SignedDelivery::from(&ev);
    let requester = agent.chain.sender().context("a sender key is required")?;
    let bundle = delivery::open(&agent.chain.deployment(), keys, requester, cluster, &d)
        .context("the delivery failed its checks; nothing was installed")?;
    // A holder superseded by a rotation requested the new epoch: it replaces its secret only with a
    // bundle that descends from it (its own epoch's secret in the keyring), never with an unrelated
    // one (a custody reset's), which would leave the app unable to read what it wrote.
    if let Some(old) = agent.store.bundle()? {
        let descends = bundle.keyring().iter().any(|(e, s)| *e == old.epoch() && s.as_slice() == old.file());
        anyhow::ensure!(
            descends,
            "the delivered epoch {} does not carry this node's epoch-{} secret in its keyring (not a rotation from \
             it); nothing was installed, this node keeps its secret",
            bundle.epoch(),
            old.epoch()
        );
    }
    let digest = agent.hold(&bundle, Some("requester_after_install"))?;
    agent.store.erase_install_secrets()?;
    info!(target: "replicatoor::requester", path = %agent.cfg.secret_file.display(), sha256 = %digest, bytes = bundle.file().len(), cluster = %cluster, delivered_block = block, "secret installed");
    Ok(true)
}
