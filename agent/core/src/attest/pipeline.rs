//! The one path from an untrusted attestation (quote + event log) to an [`AcceptedRequest`].
//!
//! Order: recipient key usable → verify quote → policy (simulated, TCB, debug) → report_data binding
//! → event-log replay and compose hash → reference ids allowed on chain. Each failure is a precise
//! [`Refusal`]; local faults (collateral, RPC) are [`Decision::Retry`], never a refusal; a simulated
//! quote that the policy allows but this holder does not trust is [`Decision::Abstain`].

use super::{
    eventlog::{AppInfo, EventLog},
    verifier::{VerifiedQuote, Verifier},
};
use crate::{
    crypto::hpke,
    protocol::{app_reference_id, Deployment, Policy, RefKind},
    refusal::Refusal,
};
use alloy::primitives::{Address, B256, U256};
use std::future::Future;

/// What the quote's report_data must bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// A new node's request: its HPKE key and the account that posted it.
    Request { request_id: U256, requester: Address, hpke_pub_key: [u8; 32] },
    /// A genesis proposal: the cluster address for an epoch.
    Genesis { cluster: Address, epoch: u64 },
}

impl Binding {
    fn expected_report_data(&self, dep: &Deployment) -> [u8; 64] {
        match self {
            Binding::Request { requester, hpke_pub_key, .. } => dep.request_report_data(*requester, hpke_pub_key),
            Binding::Genesis { cluster, epoch } => dep.genesis_report_data(*cluster, *epoch),
        }
    }
}

/// Asks the contract whether a reference id is allowed (at the block the decision is based on).
pub trait References {
    fn is_allowed(&self, id: B256, kind: RefKind) -> impl Future<Output = Result<bool, String>> + Send;
}

/// An attestation that passed every check. Only [`evaluate`] builds one; sealing takes it by reference.
#[derive(Debug, Clone)]
pub struct AcceptedRequest {
    binding: Binding,
    os_ref: B256,
    app_ref: B256,
    app: AppInfo,
    quote: VerifiedQuote,
}

impl AcceptedRequest {
    pub fn binding(&self) -> &Binding {
        &self.binding
    }
    pub fn os_ref(&self) -> B256 {
        self.os_ref
    }
    pub fn app_ref(&self) -> B256 {
        self.app_ref
    }
    pub fn app(&self) -> &AppInfo {
        &self.app
    }
    pub fn quote(&self) -> &VerifiedQuote {
        &self.quote
    }
}

/// The outcome of evaluating one attestation.
#[derive(Debug)]
pub enum Decision {
    Accept(Box<AcceptedRequest>),
    /// Refuse on chain, with a human-readable detail for the log.
    Refuse(Refusal, String),
    /// A local or transient fault; evaluate again later.
    Retry(String),
    /// This holder cannot judge (e.g. it does not trust simulated quotes that the policy allows):
    /// leave the request to other holders rather than refuse what the chain's rules accept.
    Abstain(String),
}

/// Everything [`evaluate`] needs besides the request itself.
pub struct Context<'a, R: References> {
    pub deployment: Deployment,
    pub verifier: &'a Verifier,
    pub policy: Policy,
    pub references: &'a R,
    /// Verification time (the request's block timestamp).
    pub now: u64,
}

/// Run every check on one attestation.
pub async fn evaluate<R: References>(
    ctx: &Context<'_, R>,
    binding: Binding,
    quote: &[u8],
    event_log: &[u8],
) -> Decision {
    match evaluate_inner(ctx, binding, quote, event_log).await {
        Ok(a) => Decision::Accept(Box::new(a)),
        Err(d) => d,
    }
}

async fn evaluate_inner<R: References>(
    ctx: &Context<'_, R>,
    binding: Binding,
    raw_quote: &[u8],
    raw_log: &[u8],
) -> Result<AcceptedRequest, Decision> {
    if let Binding::Request { hpke_pub_key, .. } = binding {
        if !hpke::is_usable_public_key(&hpke_pub_key) {
            return Err(Decision::Refuse(Refusal::InvalidPublicKey, "X25519 key is a low-order point".into()));
        }
    }
    if let Err(e) = ctx.verifier.prepare(raw_quote, ctx.now).await {
        return Err(Decision::Retry(e.to_string()));
    }
    let quote = ctx.verifier.verify(raw_quote, ctx.now).map_err(|e| match e.refusal() {
        Some(Refusal::SimulatedQuoteNotAllowed) if ctx.policy.allow_simulated => Decision::Abstain(e.to_string()),
        Some(r) => Decision::Refuse(r, e.to_string()),
        None => Decision::Retry(e.to_string()),
    })?;
    if quote.is_simulated() && !ctx.policy.allow_simulated {
        return Err(refuse(Refusal::SimulatedQuoteNotAllowed, "the contract's policy does not allow simulated quotes"));
    }
    if !quote.tcb_status().accepted_by(ctx.policy.tcb_statuses) {
        return Err(refuse(
            Refusal::TcbStatusNotAccepted,
            format!("TCB status {} not in policy mask {:#x}", quote.tcb_status(), ctx.policy.tcb_statuses),
        ));
    }
    let m = quote.measurements();
    if m.is_debug() && !ctx.policy.allow_debug {
        return Err(refuse(Refusal::DebugTdNotAllowed, "TD attributes have the DEBUG bit set"));
    }
    // Profiling and other TUD bits weaken isolation like DEBUG does.
    if m.td_attributes[0] & 0x70 != 0 && !ctx.policy.allow_debug {
        return Err(refuse(
            Refusal::TdAttributesNotAccepted,
            format!("TD attributes {} enable profiling", hex::encode(m.td_attributes)),
        ));
    }
    if m.report_data != binding.expected_report_data(&ctx.deployment) {
        return Err(refuse(
            Refusal::ReportDataMismatch,
            format!("report_data {} does not bind this request, chain and contract", hex::encode(&m.report_data[..16])),
        ));
    }
    let log = EventLog::from_compact(raw_log).map_err(|e| refuse(Refusal::EventLogMalformed, e.to_string()))?;
    log.replay_rtmr3_and_check(&m.rtmr[3]).map_err(|e| refuse(Refusal::Rtmr3Mismatch, e.to_string()))?;
    let app = log.app_info().map_err(|e| refuse(Refusal::EventLogMalformed, e.to_string()))?;
    if let Some(bound) = m.config_id_compose_hash() {
        if bound != app.compose_hash {
            return Err(refuse(
                Refusal::ComposeHashMismatch,
                format!(
                    "mr_config_id binds {} but the event log says {}",
                    hex::encode(bound),
                    hex::encode(app.compose_hash)
                ),
            ));
        }
    }
    let os_ref = m.os_reference_id();
    let app_ref = app_reference_id(&app.compose_hash);
    check_reference(ctx, os_ref, RefKind::Os, Refusal::OsReferenceNotAllowed).await?;
    check_reference(ctx, app_ref, RefKind::App, Refusal::AppReferenceNotAllowed).await?;
    Ok(AcceptedRequest { binding, os_ref, app_ref, app, quote })
}

async fn check_reference<R: References>(
    ctx: &Context<'_, R>,
    id: B256,
    kind: RefKind,
    refusal: Refusal,
) -> Result<(), Decision> {
    match ctx.references.is_allowed(id, kind).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(refuse(refusal, format!("{kind:?} reference {id} is not allowed now"))),
        Err(e) => Err(Decision::Retry(format!("reading {kind:?} reference {id} from the contract: {e}"))),
    }
}

fn refuse(r: Refusal, detail: impl Into<String>) -> Decision {
    Decision::Refuse(r, detail.into())
}
