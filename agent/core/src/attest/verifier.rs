//! DCAP quote verification with dcap-qvl. The only place a [`VerifiedQuote`] is made.
//!
//! The caller passes `now` (the request's block time), so verification is reproducible by auditors
//! and tests; nothing here reads the clock.

use super::consts::TEE_TYPE_TDX;
pub use super::consts::{INTEL_ROOT_CA_DER, MAX_QUOTE_LEN, SIMULATED_ROOT_CA_DER};
use super::{
    collateral::{CollateralError, CollateralSource},
    pck::{
        check_collateral_itself, check_pck_revocation, read_pck_chain, verify_read_chain, CollateralCheckError,
        PckChainError, VerifiedPck,
    },
    quote::Measurements,
    sigmemo::{self, Checked, MemoConfig, SigMemo},
    tcb::TcbStatus,
};
use crate::refusal::Refusal;
use dcap_qvl::{quote::Quote, verify::QuoteVerifier, QeIdentity, QuoteCollateralV3, TcbInfo};
use std::sync::Arc;

mod advance;
pub use advance::CollateralInUse;

/// Why a quote was not verified.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum QuoteError {
    /// Not parseable as a DCAP quote.
    #[error("quote malformed: {0}")]
    Malformed(String),
    /// A DCAP quote, but not a TDX v4/v5 quote (e.g. SGX).
    #[error("wrong TEE type: quote version {version}, TEE type {tee_type:#x} (need TDX, version 4 or 5)")]
    WrongTeeType {
        /// The header's quote version.
        version: u16,
        /// The header's TEE type.
        tee_type: u32,
    },
    /// The quote chains to the simulated PKI and this agent does not trust it.
    #[error("quote is signed by the SIMULATED PKI, which this agent does not trust (start with --allow-simulated-quotes for dev)")]
    SimulatedNotTrusted,
    /// Signature, certificate chain, CRL or QE identity checks failed.
    #[error("quote verification failed: {0}")]
    Invalid(String),
    /// The platform TCB is revoked or matches no TCB level.
    #[error("TCB not acceptable: {0}")]
    Tcb(String),
    /// Collateral missing, expired or for another platform: a local problem, retried later, never a refusal.
    #[error("collateral unavailable: {0}")]
    CollateralUnavailable(String),
}

impl QuoteError {
    /// The on-chain refusal for this error, or `None` when it is transient (retry later).
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            QuoteError::Malformed(_) => Some(Refusal::QuoteMalformed),
            QuoteError::WrongTeeType { .. } => Some(Refusal::WrongTeeType),
            QuoteError::SimulatedNotTrusted => Some(Refusal::SimulatedQuoteNotAllowed),
            QuoteError::Invalid(_) => Some(Refusal::QuoteInvalid),
            QuoteError::Tcb(_) => Some(Refusal::TcbStatusNotAccepted),
            QuoteError::CollateralUnavailable(_) => None,
        }
    }
}

/// A quote whose signature chain, collateral and TCB level were checked by dcap-qvl.
/// Only [`Verifier::verify`] builds one; policy checks come after, in the pipeline.
#[derive(Debug, Clone)]
pub struct VerifiedQuote {
    measurements: Measurements,
    tcb_status: TcbStatus,
    advisory_ids: Vec<String>,
    tcb_evaluation_data_number: u32,
    simulated: bool,
}

impl VerifiedQuote {
    /// The TD's measurements, as signed in the quote.
    pub fn measurements(&self) -> &Measurements {
        &self.measurements
    }
    /// The platform's TCB status at verification time (judged against the policy later).
    pub fn tcb_status(&self) -> TcbStatus {
        self.tcb_status
    }
    /// Intel security advisories that apply to this platform's TCB level.
    pub fn advisory_ids(&self) -> &[String] {
        &self.advisory_ids
    }
    /// The Intel TCB evaluation the collateral reflects (the older of its TCB info's and QE
    /// identity's `tcbEvaluationDataNumber`); at least the floor `verify` was given.
    pub fn tcb_evaluation_data_number(&self) -> u32 {
        self.tcb_evaluation_data_number
    }
    /// True when the quote chains to the simulated PKI (dev/test only).
    pub fn is_simulated(&self) -> bool {
        self.simulated
    }
}

/// The simulated Intel PKI (dev and tests), as the verifier sees it: a root and collateral made on
/// demand. The trust kernel only *recognises* simulated quotes (by [`SIMULATED_ROOT_CA_DER`]); the
/// PKI itself lives in the testkit and reaches a verifier only through
/// [`Verifier::dangerously_trust_simulated_quotes`], which production builds never call.
pub trait SimulatedPki: Send + Sync {
    /// The simulated root certificate (DER); equals [`SIMULATED_ROOT_CA_DER`].
    fn root_ca_der(&self) -> Vec<u8>;
    /// Collateral signed by the simulated PKI, valid at `now`.
    fn collateral(&self, now: u64) -> Result<QuoteCollateralV3, CollateralError>;
}

/// Where the verifier's CPU-bound work (signature and certificate checks) runs: the caller's choice,
/// so that an async caller keeps it off its event loop (the kernel has no runtime of its own). `run`
/// must call `work` once before it returns; [`Verifier::offloaded`] runs it in place otherwise.
pub trait Offload: Send + Sync {
    /// Run `work` to completion.
    fn run(&self, work: &mut dyn FnMut());
}

/// Verifies quotes against Intel's root, and the simulated root only when explicitly trusted.
pub struct Verifier {
    collateral: Box<dyn CollateralSource>,
    simulated: Option<Arc<dyn SimulatedPki>>,
    /// Collateral signatures already verified, so each is verified once, not once per quote.
    memo: Arc<SigMemo>,
    /// Where [`Verifier::offloaded`] runs work (none: in place).
    offload: Option<Arc<dyn Offload>>,
}

/// What [`Verifier::prepare`] verified of a quote (its PCK chain's signatures), so that
/// [`Verifier::verify_prepared`] does not verify it again. Holds only signatures that verified.
#[derive(Debug, Default)]
pub struct Prepared(Checked);

impl Verifier {
    /// A production verifier: Intel's root only.
    pub fn new(collateral: Box<dyn CollateralSource>) -> Self {
        Verifier { collateral, simulated: None, memo: Arc::default(), offload: None }
    }

    /// Run the CPU-bound part of verification through `offload` (e.g. off an async runtime's
    /// workers); it changes where the work runs, never its result.
    pub fn with_offload(mut self, offload: Arc<dyn Offload>) -> Self {
        self.offload = Some(offload);
        self
    }

    /// `work`, run through this verifier's [`Offload`] (in place without one).
    pub fn offloaded<T>(&self, work: impl FnOnce() -> T) -> T {
        let Some(offload) = &self.offload else { return work() };
        let (mut work, mut out) = (Some(work), None);
        offload.run(&mut || out = work.take().map(|w| w()));
        // A hook that did not run it: run it here.
        out.or_else(|| work.map(|w| w())).unwrap_or_else(|| unreachable!("work taken without a result"))
    }

    /// Also trust quotes from the simulated PKI. The contract's policy must allow them too.
    pub fn dangerously_trust_simulated_quotes(mut self, pki: Arc<dyn SimulatedPki>) -> Self {
        self.simulated = Some(pki);
        self
    }

    /// Verify the posted quote (raw or compact, PROTOCOL.md §3.9) at unix time `now`, with collateral
    /// of Intel's TCB evaluation `min_tcb_eval` or later (the policy's `minTcbEvaluationDataNumber`;
    /// 0 = any).
    ///
    /// Order, each step typed by who is at fault: a compact quote decodes (requester: malformed,
    /// like any unparsable quote); the quote parses and is TDX (requester); its PCK chain verifies
    /// against the root (requester); collateral for the verified key is at hand, passes its own
    /// checks against the same root and is not older than `min_tcb_eval` (holder: retry; older
    /// collateral may predate a TCB recovery, so its verdict is not used at all, not even to refuse);
    /// the PCK chain is not revoked (requester); then dcap-qvl verifies the quote with that
    /// collateral, and a failure there is the quote's (requester).
    pub fn verify(&self, posted: &[u8], now: u64, min_tcb_eval: u32) -> Result<VerifiedQuote, QuoteError> {
        self.verify_prepared(posted, now, min_tcb_eval, Prepared::default())
    }

    /// [`Verifier::verify`], after [`Verifier::prepare`] of the same quote.
    ///
    /// Signatures: the quote's own (its PCK chain, CRL lookups for it, QE report, body) are
    /// verified once per call and remembered only until it returns; the collateral's own are
    /// remembered for later quotes once the collateral passed its checks (see [`sigmemo`]).
    pub fn verify_prepared(
        &self,
        posted: &[u8],
        now: u64,
        min_tcb_eval: u32,
        prepared: Prepared,
    ) -> Result<VerifiedQuote, QuoteError> {
        let Prepared(mut own) = prepared;
        let (raw, quote, measurements) = parse_posted(posted)?;
        let parts = self.collateral_for_quote(&quote, now, min_tcb_eval, &mut own)?;
        // Debug TDs are judged by the contract's policy in the pipeline, with their own refusal code.
        let report = sigmemo::within(&self.memo, &mut own, || {
            QuoteVerifier::<MemoConfig>::new_with_config(parts.root).allow_debug(true).verify(
                &raw,
                &parts.collateral,
                now,
            )
        })
        .map_err(|e| quote_fault(format!("{e:#}")))?;
        let tcb_status =
            report.status.parse::<TcbStatus>().map_err(|e| QuoteError::Invalid(format!("dcap-qvl reported {e}")))?;
        Ok(VerifiedQuote {
            measurements,
            tcb_status,
            advisory_ids: report.advisory_ids,
            tcb_evaluation_data_number: parts.tcb_evaluation_data_number,
            simulated: parts.simulated,
        })
    }

    /// The quote's root (Intel's, or the simulated one when trusted), its PCK chain verified against
    /// it, and the collateral for that chain's key, checked against the same root and not older
    /// than Intel's TCB evaluation `min_tcb_eval`.
    ///
    /// Each step typed by who is at fault: the PCK chain (requester), collateral at hand, sound and
    /// recent enough (holder: retry), the PCK chain not revoked (requester). `own` holds this
    /// quote's signature checks; the collateral's are remembered once it passed every check.
    fn collateral_for_quote(
        &self,
        quote: &Quote,
        now: u64,
        min_tcb_eval: u32,
        own: &mut Checked,
    ) -> Result<QuoteParts, QuoteError> {
        let chain = read_pck_chain(quote);
        let simulated = chain_contains(quote, &chain, SIMULATED_ROOT_CA_DER);
        let root = match (&self.simulated, simulated) {
            (None, true) => return Err(QuoteError::SimulatedNotTrusted),
            (Some(pki), true) => pki.root_ca_der(),
            (_, false) => INTEL_ROOT_CA_DER.to_vec(),
        };
        let pck = sigmemo::within(&self.memo, own, || verify_read_chain(quote, chain, &root, now))
            .map_err(|e| QuoteError::Invalid(e.to_string()))?;
        let mut collateral = match (&self.simulated, simulated) {
            (Some(pki), true) => pki.collateral(now),
            _ => self.collateral.collateral_for(pck.key()),
        }
        .map_err(|e| QuoteError::CollateralUnavailable(e.to_string()))?;
        // Each quote is verified with its own PCK chain (the one just verified), never one that came
        // with the collateral.
        collateral.pck_certificate_chain = None;
        let unavailable = |e: CollateralCheckError| match e {
            CollateralCheckError::Fault(f) => QuoteError::CollateralUnavailable(format!("{}: {f}", pck.key())),
            CollateralCheckError::PckRevoked => QuoteError::Invalid(e.to_string()),
        };
        let mut collateral_own = Checked::default();
        let checked =
            sigmemo::within(&self.memo, &mut collateral_own, || check_collateral_itself(&collateral, &pck, now))
                .map_err(|f| unavailable(f.into()))?;
        let tcb_evaluation_data_number = evaluation_number(&collateral)
            .map_err(|e| QuoteError::CollateralUnavailable(format!("{}: {e}", pck.key())))?;
        if tcb_evaluation_data_number < min_tcb_eval {
            return Err(QuoteError::CollateralUnavailable(format!(
                "{}: collateral of TCB evaluation {tcb_evaluation_data_number} is older than the policy's minimum \
                 {min_tcb_eval}; waiting for fresher collateral",
                pck.key()
            )));
        }
        sigmemo::within(&self.memo, own, || check_pck_revocation(&checked, &pck, now)).map_err(unavailable)?;
        // Only now, with every check of this collateral passed for a quote, are its signatures kept.
        self.memo.remember(collateral_own);
        Ok(QuoteParts { root, pck, collateral, simulated, tcb_evaluation_data_number })
    }
}

/// Which of Intel's TCB evaluations (recoveries) collateral `c` reflects: the older of its TCB info's
/// and QE identity's `tcbEvaluationDataNumber`, read here from the very bytes whose signatures dcap-qvl
/// verifies for the quote. The policy's floor (PROTOCOL.md §5.1 row 4b) is judged on this number and
/// nothing else checks it, so it is not taken from the collateral pre-checks (`pck.rs`), which can only
/// refuse or postpone (TRUST.md section 1).
fn evaluation_number(c: &QuoteCollateralV3) -> Result<u32, String> {
    let tcb: TcbInfo = serde_json::from_str(&c.tcb_info).map_err(|e| format!("TCB info does not parse: {e}"))?;
    let qe: QeIdentity =
        serde_json::from_str(&c.qe_identity).map_err(|e| format!("QE identity does not parse: {e}"))?;
    Ok(tcb.tcb_evaluation_data_number.min(qe.tcb_evaluation_data_number))
}

/// PROTOCOL.md §5.1 rows 1-2 on a posted quote (raw or compact), without verifying anything: the
/// size cap, a compact quote decodes, the quote parses, it is a TDX v4/v5 quote with a TD report.
/// The cheap part of verification, which the pipeline runs before any collateral or signature work
/// (a quote failing here is refused at once, whatever the collateral source does).
pub fn parse_posted(posted: &[u8]) -> Result<(std::borrow::Cow<'_, [u8]>, Quote, Measurements), QuoteError> {
    if posted.len() > MAX_QUOTE_LEN {
        return Err(QuoteError::Malformed(format!("{} bytes exceeds the {MAX_QUOTE_LEN} byte limit", posted.len())));
    }
    let raw = replicatoor_compact_quote::to_raw(posted).map_err(|e| QuoteError::Malformed(e.to_string()))?;
    let quote = Quote::parse(&raw).map_err(|e| match header_kind(&raw) {
        // A complete DCAP header naming another TEE or quote version is the wrong TEE type
        // (PROTOCOL.md §5.1 row 2), whether or not dcap-qvl can lay out what follows it.
        // Version 0 is no DCAP version at all (e.g. zeros): malformed.
        Some((version, tee_type))
            if version != 0
                && KNOWN_TEE_TYPES.contains(&tee_type)
                && !(tee_type == TEE_TYPE_TDX && (4..=5).contains(&version)) =>
        {
            QuoteError::WrongTeeType { version, tee_type }
        }
        _ => QuoteError::Malformed(format!("{e:#}")),
    })?;
    let (version, tee_type) = (quote.header.version, quote.header.tee_type);
    if tee_type != TEE_TYPE_TDX || !(4..=5).contains(&version) {
        return Err(QuoteError::WrongTeeType { version, tee_type });
    }
    let measurements =
        Measurements::from_report(&quote.report).ok_or(QuoteError::WrongTeeType { version, tee_type })?;
    Ok((raw, quote, measurements))
}

/// What [`Verifier::collateral_for_quote`] establishes.
struct QuoteParts {
    root: Vec<u8>,
    pck: VerifiedPck,
    collateral: QuoteCollateralV3,
    simulated: bool,
    tcb_evaluation_data_number: u32,
}

/// DCAP header length, and the TEE types a DCAP header names (SGX, TDX).
const HEADER_LEN: usize = 48;
const KNOWN_TEE_TYPES: [u32; 2] = [0x00, TEE_TYPE_TDX];

/// `(version, tee_type)` of a complete DCAP header at the start of `raw`.
fn header_kind(raw: &[u8]) -> Option<(u16, u32)> {
    let header = raw.get(..HEADER_LEN)?;
    Some((u16::from_le_bytes([header[0], header[1]]), u32::from_le_bytes([header[4], header[5], header[6], header[7]])))
}

/// Whether the quote's embedded PCK chain holds the certificate `der` (anywhere in the chain), as the
/// strict PEM and X.509 parsers read it. `chain` is the chain as dcap-qvl's lenient PEM reader reads
/// it ([`read_pck_chain`]): a block the strict parsers decode to `der` it decodes to `der` too, so a
/// quote without `der` there (every genuine one) is settled without parsing X.509.
fn chain_contains(quote: &Quote, chain: &Result<Vec<Vec<u8>>, PckChainError>, der: &[u8]) -> bool {
    use der::Encode;
    if !chain.as_ref().is_ok_and(|certs| certs.iter().any(|c| c == der)) {
        return false;
    }
    let Ok(chain) = quote.raw_cert_chain() else { return false };
    let Ok(certs) = x509_cert::Certificate::load_pem_chain(trim_padding(chain)) else { return false };
    certs.iter().any(|c| c.to_der().is_ok_and(|d| d == der))
}

/// Genuine quotes pad the PEM chain with NUL bytes; the PEM parser wants it to end after the last block.
fn trim_padding(chain: &[u8]) -> &[u8] {
    let end = chain.iter().rposition(|b| *b != 0 && !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    &chain[..end]
}

/// A dcap-qvl failure once the PCK chain and the collateral have passed their own checks: the
/// quote is at fault, so it is refused either way. Which refusal — the platform's TCB level (no
/// level matches, or it is revoked) or an invalid quote — dcap-qvl reports only in words; the
/// retry-or-refuse decision never depends on them.
fn quote_fault(msg: String) -> QuoteError {
    let m = msg.to_ascii_lowercase();
    if m.contains("revoked") || m.contains("no matching tcb level") {
        QuoteError::Tcb(msg)
    } else {
        QuoteError::Invalid(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::collateral::CollateralKey;
    use std::sync::Mutex;

    /// 2025-07-01T00:00:00Z: inside the genuine TDX quote's collateral window.
    const NOW: u64 = 1_751_328_000;
    /// When the genuine collateral's PCK CRL expires (2025-07-19T10:00:35Z).
    const EXPIRY: u64 = 1_752_919_235;

    fn fixture(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dcap-qvl-samples");
        std::fs::read(dir.join(name)).expect("fixture")
    }

    fn genuine_collateral() -> QuoteCollateralV3 {
        serde_json::from_slice(&fixture("tdx_quote_collateral.json")).expect("collateral JSON")
    }

    /// The floor is judged on the number in the collateral dcap-qvl verifies: the older of its two
    /// documents' (here the QE identity's, edited), whatever the collateral pre-checks made of it.
    #[test]
    fn the_evaluation_number_is_the_older_of_the_two_documents() {
        let mut c = genuine_collateral();
        assert_eq!(evaluation_number(&c), Ok(17));
        c.qe_identity = c.qe_identity.replace("\"tcbEvaluationDataNumber\":17", "\"tcbEvaluationDataNumber\":16");
        assert_eq!(evaluation_number(&c), Ok(16));
        c.tcb_info = "{".into();
        assert!(evaluation_number(&c).is_err_and(|e| e.contains("TCB info")));
    }

    /// One collateral for every key, which a test can replace between quotes (a refresh).
    struct Swappable(Arc<Mutex<QuoteCollateralV3>>);

    impl CollateralSource for Swappable {
        fn collateral_for(&self, _: &CollateralKey) -> Result<QuoteCollateralV3, CollateralError> {
            Ok(self.0.lock().expect("lock").clone())
        }
    }

    fn swappable() -> (Verifier, Arc<Mutex<QuoteCollateralV3>>) {
        let c = Arc::new(Mutex::new(genuine_collateral()));
        (Verifier::new(Box::new(Swappable(c.clone()))), c)
    }

    /// (signatures computed, answered from a memo) by `v` so far.
    fn counts(v: &Verifier) -> (u64, u64) {
        (v.memo.computed(), v.memo.hits())
    }

    #[test]
    fn the_second_quote_uses_the_collateral_signatures_the_first_verified() {
        let (v, _) = swappable();
        let quote = fixture("tdx_quote");
        v.verify(&quote, NOW, 0).expect("genuine");
        let (first, _) = counts(&v);
        // Root CA CRL, TCB signing certificate, TCB info, QE identity.
        let kept = v.memo.len() as u64;
        assert!(kept >= 4, "{kept} collateral signatures kept");
        v.verify(&quote, NOW, 0).expect("genuine again");
        let (total, hits) = counts(&v);
        // The second quote computes exactly what the first did less the collateral's signatures.
        assert_eq!(total - first, first - kept, "first {first}, second {}", total - first);
        assert!(hits >= 2 * kept, "{hits} hits");
        // A prepared quote's PCK chain is not verified again either.
        let prepared = futures::executor::block_on(v.prepare(&quote, NOW, 0)).expect("nothing to fetch");
        let (before, _) = counts(&v);
        v.verify_prepared(&quote, NOW, 0, prepared).expect("genuine, prepared");
        assert!(counts(&v).0 - before < total - first, "prepare's chain checks are reused");
    }

    #[test]
    fn a_collateral_with_a_bad_signature_fails_after_a_good_one_was_remembered() {
        let (v, c) = swappable();
        let quote = fixture("tdx_quote");
        v.verify(&quote, NOW, 0).expect("genuine");
        let good = genuine_collateral();
        // The same key, other bytes: a body changed under its signature, a signature changed, each
        // of TCB info and QE identity.
        let mut tcb_body = good.clone();
        tcb_body.tcb_info = tcb_body.tcb_info.replacen("\"version\":3", "\"version\": 3", 1);
        assert_ne!(tcb_body.tcb_info, good.tcb_info);
        let mut tcb_sig = good.clone();
        tcb_sig.tcb_info_signature[5] ^= 1;
        let mut qe_body = good.clone();
        qe_body.qe_identity = qe_body.qe_identity.replacen("\"version\":2", "\"version\": 2", 1);
        assert_ne!(qe_body.qe_identity, good.qe_identity);
        let mut qe_sig = good.clone();
        qe_sig.qe_identity_signature[40] ^= 1;
        let mut root_crl = good.clone();
        let last = root_crl.root_ca_crl.len() - 1;
        root_crl.root_ca_crl[last] ^= 1;
        let mut pck_crl = good.clone();
        let last = pck_crl.pck_crl.len() - 1;
        pck_crl.pck_crl[last] ^= 1;
        for (name, bad) in [
            ("TCB info", tcb_body),
            ("TCB info signature", tcb_sig),
            ("QE identity", qe_body),
            ("QE identity signature", qe_sig),
            ("root CA CRL", root_crl),
            ("PCK CRL", pck_crl),
        ] {
            *c.lock().expect("lock") = bad;
            let err = v.verify(&quote, NOW, 0).unwrap_err();
            assert!(matches!(err, QuoteError::CollateralUnavailable(_)), "{name}: {err:?}");
        }
        // And the good one still passes.
        *c.lock().expect("lock") = good;
        v.verify(&quote, NOW, 0).expect("genuine");
    }

    #[test]
    fn windows_are_judged_at_each_quote_s_time_with_the_memo_warm() {
        let (v, _) = swappable();
        let quote = fixture("tdx_quote");
        v.verify(&quote, NOW, 0).expect("genuine");
        for (when, now) in
            [("expired", EXPIRY + 86_400), ("PCK CRL expired", EXPIRY + 60), ("not yet valid", 1_750_291_200)]
        {
            let (_, hits) = counts(&v);
            let err = v.verify(&quote, now, 0).unwrap_err();
            assert!(matches!(err, QuoteError::CollateralUnavailable(_)), "{when}: {err:?}");
            assert!(counts(&v).1 > hits, "{when}: the memo was consulted");
        }
        v.verify(&quote, EXPIRY - 1, 0).expect("valid the second before it expires");
    }
}
