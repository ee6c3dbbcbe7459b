//! The one path from an untrusted attestation (quote + event log) to an [`Accepted`] value.
//!
//! Order (PROTOCOL.md §5.1, first failure decides; version 5 put every check that needs no
//! collateral, signature or chain read first): the cheap checks of [`precheck`] (recipient key,
//! quote size and form, TEE type, report_data binding, event-log replay, claim rules, compose hash)
//! → both reference ids allowed on chain → verify the quote (a compact quote, §3.9, is rebuilt
//! first, by the verifier; collateral older than the policy's TCB evaluation floor is a retry) →
//! policy (simulated, TCB, debug). Each failure is a precise [`Refusal`]; local faults (collateral,
//! RPC) are [`Decision::Retry`], never a refusal; a simulated quote that the policy allows but this
//! holder does not trust is [`Decision::Abstain`]. Checks on claimed (not yet verified) bytes only
//! ever refuse: a genuine quote carries exactly the bytes they look at, so none of them can accept.
//!
//! Requests and genesis proposals run the same checks but yield distinct types
//! ([`AcceptedRequest`], [`AcceptedGenesis`]): only the first can be sealed to
//! ([`crate::delivery::seal`]), and the compiler, not a runtime check, keeps it so.

use super::{
    eventlog::EventLog,
    quote::Measurements,
    verifier::{parse_posted, VerifiedQuote, Verifier},
};
use crate::{
    crypto::hpke,
    protocol::{app_reference_id, Deployment, Policy, RefKind},
    refusal::Refusal,
};
use alloy::primitives::{Address, B256, U256};
use std::{fmt, future::Future};

/// A new node's request (`SecretRequested`): its quote must bind the requester and its HPKE key,
/// so a delivery can only be opened inside the attested TD, and a copied request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBinding {
    /// The contract's id of the request; part of the HPKE context and the signed delivery.
    pub request_id: U256,
    /// The account that posted the request (bound in report_data).
    pub requester: Address,
    /// The X25519 key the bundle will be sealed to (bound in report_data).
    pub hpke_pub_key: [u8; 32],
}

impl RequestBinding {
    /// The `request` the cluster's answer names: [`crate::protocol::request_key`].
    pub fn request_key(&self) -> B256 {
        crate::protocol::request_key(&self.hpke_pub_key, self.requester)
    }
}

/// A genesis proposal (`GenesisProposed`): its quote must bind the cluster address it generated for
/// an epoch, so the owner approves a cluster key that was made inside an attested TD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenesisBinding {
    /// The proposed cluster address.
    pub cluster: Address,
    /// The epoch the cluster key starts.
    pub epoch: u64,
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::RequestBinding {}
    impl Sealed for super::GenesisBinding {}
}

/// What an attestation is evaluated for: [`RequestBinding`] or [`GenesisBinding`], and no other
/// (the trait is sealed). It fixes the report_data the quote must carry (PROTOCOL.md §3.1).
pub trait Binding: sealed::Sealed + Copy + fmt::Debug + Send + Sync {
    /// The report_data a quote must carry for this binding in deployment `dep`.
    fn expected_report_data(&self, dep: &Deployment) -> [u8; 64];
    /// The key a delivery would be sealed to, checked before anything else (§5.1 row 0);
    /// `None` for genesis, which receives nothing.
    fn recipient_key(&self) -> Option<&[u8; 32]>;
}

impl Binding for RequestBinding {
    fn expected_report_data(&self, dep: &Deployment) -> [u8; 64] {
        dep.request_report_data(self.requester, &self.hpke_pub_key)
    }
    fn recipient_key(&self) -> Option<&[u8; 32]> {
        Some(&self.hpke_pub_key)
    }
}

impl Binding for GenesisBinding {
    fn expected_report_data(&self, dep: &Deployment) -> [u8; 64] {
        dep.genesis_report_data(self.cluster, self.epoch)
    }
    fn recipient_key(&self) -> Option<&[u8; 32]> {
        None
    }
}

/// Asks the contract whether a reference id is allowed (at the block the decision is based on).
pub trait References {
    /// Why the answer could not be read (e.g. an RPC failure). Never a refusal: the request is
    /// evaluated again later.
    type Error: std::error::Error;
    /// The contract's `isAllowed(id, kind)`: known, of this kind, active and not revoked.
    fn is_allowed(&self, id: B256, kind: RefKind) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// An attestation that passed every check for binding `B`. Only [`evaluate`] builds one (the
/// fields are private), so holding one is proof that the checks ran.
#[derive(Debug, Clone)]
pub struct Accepted<B> {
    binding: B,
    policy: Policy,
    os_ref: B256,
    app_ref: B256,
    quote: VerifiedQuote,
}

/// An accepted new-node request: the only thing [`crate::delivery::seal`] seals to.
pub type AcceptedRequest = Accepted<RequestBinding>;
/// An accepted genesis proposal: the owner may approve it; nothing can be sealed to it.
pub type AcceptedGenesis = Accepted<GenesisBinding>;

impl<B: Binding> Accepted<B> {
    /// What the quote was checked to bind.
    pub fn binding(&self) -> &B {
        &self.binding
    }
    /// The contract policy the checks applied (a delivery names it, and the contract refuses the
    /// delivery once another policy is in force).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    /// The allowed OS reference id the quote measures (MRTD, RTMR0-2).
    pub fn os_ref(&self) -> B256 {
        self.os_ref
    }
    /// The allowed app reference id the event log measures (compose hash).
    pub fn app_ref(&self) -> B256 {
        self.app_ref
    }
    /// The quote as dcap-qvl verified it.
    pub fn quote(&self) -> &VerifiedQuote {
        &self.quote
    }
}

/// The outcome of evaluating one attestation; `A` is what an acceptance carries
/// ([`AcceptedRequest`] or [`AcceptedGenesis`] from [`evaluate`]).
#[derive(Debug)]
pub enum Decision<A> {
    /// Every check passed.
    Accept(Box<A>),
    /// Refuse on chain, with a human-readable detail for the log.
    Refuse(Refusal, String),
    /// A local or transient fault; evaluate again later.
    Retry(String),
    /// This holder cannot judge (e.g. it does not trust simulated quotes that the policy allows):
    /// leave the request to other holders rather than refuse what the chain's rules accept.
    Abstain(String),
}

/// Everything [`evaluate`] needs besides the attestation itself.
pub struct Context<'a, R: References> {
    /// The chain and contract every binding includes.
    pub deployment: Deployment,
    /// The quote verifier (trust roots and collateral).
    pub verifier: &'a Verifier,
    /// The contract's policy at the decision block.
    pub policy: Policy,
    /// The contract's reference answers at the decision block.
    pub references: &'a R,
    /// Verification time (PROTOCOL.md §5.1: the decision block's timestamp for holders).
    pub now: u64,
}

/// Run every check on one attestation for `binding`.
pub async fn evaluate<R: References, B: Binding>(
    ctx: &Context<'_, R>,
    binding: B,
    quote: &[u8],
    event_log: &[u8],
) -> Decision<Accepted<B>> {
    evaluate_inner(ctx, binding, quote, event_log).await.map_or_else(|d| d, |a| Decision::Accept(Box::new(a)))
}

/// What the cheap checks (PROTOCOL.md §5.1 rows 0-2 and 9-13) establish of a posted attestation, from its
/// bytes alone: nothing in it is verified yet (the quote's signature is checked later), so it only
/// says that the attestation is not junk by its form, and which reference ids it claims.
#[derive(Debug, Clone)]
pub struct Prechecked {
    measurements: Measurements,
    os_ref: B256,
    app_ref: B256,
}

/// The checks of PROTOCOL.md §5.1 that need neither collateral nor a signature check nor the chain
/// (rows 0-2 and 9-13): recipient key, quote size and form, TEE type, report_data binding, event log, RTMR3
/// replay, claim rules, compose hash in `mr_config_id`. Microseconds per attestation and no I/O, so a
/// holder runs them on every request as it arrives (junk is refused without costing collateral
/// fetches or verification, and sorted behind requests that pass), and [`evaluate`] runs them first.
/// A failure is final for the posted bytes: the refusal and a detail for the log.
pub fn precheck<B: Binding>(
    deployment: &Deployment,
    binding: &B,
    raw_quote: &[u8],
    raw_log: &[u8],
) -> Result<Prechecked, (Refusal, String)> {
    if binding.recipient_key().is_some_and(|key| !hpke::is_usable_public_key(key)) {
        return Err((Refusal::InvalidPublicKey, "X25519 key is a low-order point".into()));
    }
    // parse_posted fails only with a requester's fault (a refusal); the default keeps the mapping total.
    let (_, _, m) =
        parse_posted(raw_quote).map_err(|e| (e.refusal().unwrap_or(Refusal::QuoteMalformed), e.to_string()))?;
    // Unverified here, but a genuine quote carries exactly these bytes: a quote that does not bind
    // this request cannot become one that does by verifying, so it is refused before any
    // collateral is fetched (an unreachable collateral source must not keep junk pending).
    if m.report_data != binding.expected_report_data(deployment) {
        return Err((
            Refusal::ReportDataMismatch,
            format!("report_data {} does not bind this request, chain and contract", hex::encode(&m.report_data[..16])),
        ));
    }
    let log = EventLog::from_compact(raw_log).map_err(|e| (Refusal::EventLogMalformed, e.to_string()))?;
    log.replay_rtmr3_and_check(&m.rtmr[3]).map_err(|e| (Refusal::Rtmr3Mismatch, e.to_string()))?;
    let app = log.app_info().map_err(|e| (Refusal::EventLogMalformed, e.to_string()))?;
    if let Some(bound) = m.config_id_compose_hash().filter(|bound| *bound != app.compose_hash) {
        return Err((
            Refusal::ComposeHashMismatch,
            format!(
                "mr_config_id binds {} but the event log says {}",
                hex::encode(bound),
                hex::encode(app.compose_hash)
            ),
        ));
    }
    Ok(Prechecked { os_ref: m.os_reference_id(), app_ref: app_reference_id(&app.compose_hash), measurements: m })
}

async fn evaluate_inner<R: References, B: Binding>(
    ctx: &Context<'_, R>,
    binding: B,
    raw_quote: &[u8],
    raw_log: &[u8],
) -> Result<Accepted<B>, Decision<Accepted<B>>> {
    let pre = precheck(&ctx.deployment, &binding, raw_quote, raw_log).map_err(|(r, why)| refuse(r, why))?;
    // The allowlist, still before any collateral or signature work: the measurements are claimed,
    // not verified, but a quote claiming a reference the contract does not allow cannot be accepted.
    check_reference(ctx, pre.os_ref, RefKind::Os, Refusal::OsReferenceNotAllowed).await?;
    check_reference(ctx, pre.app_ref, RefKind::App, Refusal::AppReferenceNotAllowed).await?;
    let min_tcb_eval = ctx.policy.min_tcb_evaluation_data_number;
    let prepared =
        ctx.verifier.prepare(raw_quote, ctx.now, min_tcb_eval).await.map_err(|e| Decision::Retry(e.to_string()))?;
    let verified = ctx.verifier.offloaded(|| ctx.verifier.verify_prepared(raw_quote, ctx.now, min_tcb_eval, prepared));
    let quote = verified.map_err(|e| match e.refusal() {
        Some(Refusal::SimulatedQuoteNotAllowed) if ctx.policy.allow_simulated => Decision::Abstain(e.to_string()),
        Some(r) => Decision::Refuse(r, e.to_string()),
        None => Decision::Retry(e.to_string()),
    })?;
    // The measurements checked above are the verified quote's (the same posted bytes, now verified).
    debug_assert_eq!(quote.measurements(), &pre.measurements);
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
    Ok(Accepted { binding, policy: ctx.policy, os_ref: pre.os_ref, app_ref: pre.app_ref, quote })
}

async fn check_reference<R: References, A>(
    ctx: &Context<'_, R>,
    id: B256,
    kind: RefKind,
    refusal: Refusal,
) -> Result<(), Decision<A>> {
    match ctx.references.is_allowed(id, kind).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(refuse(refusal, format!("{kind:?} reference {id} is not allowed now"))),
        Err(e) => Err(Decision::Retry(format!("reading {kind:?} reference {id} from the contract: {e}"))),
    }
}

fn refuse<A>(r: Refusal, detail: impl Into<String>) -> Decision<A> {
    Decision::Refuse(r, detail.into())
}
