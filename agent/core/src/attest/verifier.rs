//! DCAP quote verification with dcap-qvl. The only place a [`VerifiedQuote`] is made.
//!
//! The caller passes `now` (the request's block time), so verification is reproducible by auditors
//! and tests; nothing here reads the clock.

use super::{
    collateral::{CollateralError, CollateralSource},
    compact,
    pck::{check_collateral, verify_pck_chain, CollateralCheckError, VerifiedPck},
    quote::Measurements,
    quote::TEE_TYPE_TDX,
    tcb::TcbStatus,
};
use crate::refusal::Refusal;
use dcap_qvl::{quote::Quote, verify::QuoteVerifier, QuoteCollateralV3};
use std::sync::Arc;

/// Largest quote we parse (the contract caps calldata at 16 KiB as well).
pub const MAX_QUOTE_LEN: usize = 16 * 1024;

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
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifiedQuote {
    measurements: Measurements,
    tcb_status: TcbStatus,
    advisory_ids: Vec<String>,
    tcb_evaluation_data_number: u32,
    simulated: bool,
    quote_version: u16,
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
    /// The quote format version (4 or 5).
    pub fn quote_version(&self) -> u16 {
        self.quote_version
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

/// The simulated PKI's root certificate (DER). Public: anyone can derive it from the testkit's
/// public seed (a testkit test checks they agree). Kept here so a production verifier names a
/// simulated quote as such (refusal 8) instead of calling it invalid.
pub const SIMULATED_ROOT_CA_DER: &[u8] = include_bytes!("simulated_root_ca.der");

/// Verifies quotes against Intel's root, and the simulated root only when explicitly trusted.
pub struct Verifier {
    collateral: Box<dyn CollateralSource>,
    simulated: Option<Arc<dyn SimulatedPki>>,
}

impl Verifier {
    /// A production verifier: Intel's root only.
    pub fn new(collateral: Box<dyn CollateralSource>) -> Self {
        Verifier { collateral, simulated: None }
    }

    /// Also trust quotes from the simulated PKI. The contract's policy must allow them too.
    pub fn dangerously_trust_simulated_quotes(mut self, pki: Arc<dyn SimulatedPki>) -> Self {
        self.simulated = Some(pki);
        self
    }

    /// Whether quotes from the simulated PKI verify here.
    pub fn trusts_simulated(&self) -> bool {
        self.simulated.is_some()
    }

    /// Fetch or refresh what verification of `raw` at `now` under the TCB evaluation floor
    /// `min_tcb_eval` will need (genuine quotes only; a failure here means "wait", never "refuse").
    ///
    /// Only for a TDX quote whose PCK chain verifies against Intel's root: the collateral key comes
    /// from that verified certificate, so junk (or a forged FMSPC in a certificate that merely names
    /// Intel's root as its last link) neither calls the PCCS nor chooses what is cached for a
    /// genuine platform.
    pub async fn prepare(&self, posted: &[u8], now: u64, min_tcb_eval: u32) -> Result<(), QuoteError> {
        if posted.len() > MAX_QUOTE_LEN {
            return Ok(());
        }
        let Ok(raw) = compact::to_raw(posted) else { return Ok(()) };
        let raw = &*raw;
        let Ok(quote) = Quote::parse(raw) else { return Ok(()) };
        if quote.header.tee_type != TEE_TYPE_TDX || chain_contains(&quote, SIMULATED_ROOT_CA_DER) {
            return Ok(());
        }
        let Ok(pck) = verify_pck_chain(&quote, INTEL_ROOT_CA_DER, now) else { return Ok(()) };
        self.collateral
            .prepare(&pck, now, min_tcb_eval)
            .await
            .map_err(|e| QuoteError::CollateralUnavailable(e.to_string()))
    }

    /// Verify the posted quote (raw or compact, PROTOCOL.md §3.9) at unix time `now`, with collateral
    /// of Intel's TCB evaluation `min_tcb_eval` or later (the policy's `minTcbEvaluationDataNumber`;
    /// 0 = any).
    ///
    /// Order, each step typed by who is at fault: a compact quote decodes (requester: malformed,
    /// like any unparsable quote); the quote parses and is TDX (requester); its PCK
    /// chain verifies against the root (requester); collateral for the verified key is at hand and
    /// passes its own checks against the same root and is not older than `min_tcb_eval` (holder:
    /// retry; older collateral may predate a TCB recovery, so its verdict is not used at all, not
    /// even to refuse); the PCK chain is not revoked
    /// (requester); then dcap-qvl verifies the quote with that collateral, and a failure there is
    /// the quote's (requester).
    pub fn verify(&self, posted: &[u8], now: u64, min_tcb_eval: u32) -> Result<VerifiedQuote, QuoteError> {
        if posted.len() > MAX_QUOTE_LEN {
            return Err(QuoteError::Malformed(format!(
                "{} bytes exceeds the {MAX_QUOTE_LEN} byte limit",
                posted.len()
            )));
        }
        let raw = compact::to_raw(posted).map_err(|e| QuoteError::Malformed(e.to_string()))?;
        let raw = &*raw;
        let quote = Quote::parse(raw).map_err(|e| match header_kind(raw) {
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
        let Checked { root, collateral, simulated, tcb_evaluation_data_number, .. } =
            self.checked_collateral(&quote, now, min_tcb_eval)?;
        // Debug TDs are judged by the contract's policy in the pipeline, with their own refusal code.
        let report = QuoteVerifier::new(root)
            .allow_debug(true)
            .verify(raw, &collateral, now)
            .map_err(|e| quote_fault(format!("{e:#}")))?;
        let tcb_status =
            report.status.parse::<TcbStatus>().map_err(|e| QuoteError::Invalid(format!("dcap-qvl reported {e}")))?;
        Ok(VerifiedQuote {
            measurements,
            tcb_status,
            advisory_ids: report.advisory_ids,
            tcb_evaluation_data_number,
            simulated,
            quote_version: version,
        })
    }

    /// The root, verified PCK chain and checked collateral that [`Verifier::verify`] would use for
    /// the posted quote (raw or compact) at `now` (any TCB evaluation). For advice to operators (`preflight`'s horizon); holders
    /// never call it.
    pub fn collateral_in_use(&self, posted: &[u8], now: u64) -> Result<CollateralInUse, QuoteError> {
        if posted.len() > MAX_QUOTE_LEN {
            return Err(QuoteError::Malformed(format!(
                "{} bytes exceeds the {MAX_QUOTE_LEN} byte limit",
                posted.len()
            )));
        }
        let raw = compact::to_raw(posted).map_err(|e| QuoteError::Malformed(e.to_string()))?.into_owned();
        let quote = Quote::parse(&raw).map_err(|e| QuoteError::Malformed(format!("{e:#}")))?;
        let Checked { root, pck, collateral, .. } = self.checked_collateral(&quote, now, 0)?;
        Ok(CollateralInUse { raw, root, pck, collateral })
    }

    /// The quote's root (Intel's, or the simulated one when trusted), its PCK chain verified against
    /// it, and the collateral for that chain's key, checked against the same root and not older
    /// than Intel's TCB evaluation `min_tcb_eval`.
    ///
    /// Each step typed by who is at fault: the PCK chain (requester), collateral at hand, sound and
    /// recent enough (holder: retry; older collateral may predate a TCB recovery, so its verdict is
    /// not used at all, not even to refuse), the PCK chain not revoked (requester).
    fn checked_collateral(&self, quote: &Quote, now: u64, min_tcb_eval: u32) -> Result<Checked, QuoteError> {
        let simulated = chain_contains(quote, SIMULATED_ROOT_CA_DER);
        let root = match (&self.simulated, simulated) {
            (None, true) => return Err(QuoteError::SimulatedNotTrusted),
            (Some(pki), true) => pki.root_ca_der(),
            (_, false) => INTEL_ROOT_CA_DER.to_vec(),
        };
        let pck = verify_pck_chain(quote, &root, now).map_err(|e| QuoteError::Invalid(e.to_string()))?;
        let mut collateral = match (&self.simulated, simulated) {
            (Some(pki), true) => pki.collateral(now),
            _ => self.collateral.collateral_for(pck.key()),
        }
        .map_err(|e| QuoteError::CollateralUnavailable(e.to_string()))?;
        // Each quote is verified with its own PCK chain (the one just verified), never one that came
        // with the collateral.
        collateral.pck_certificate_chain = None;
        let checked = check_collateral(&collateral, &pck, now).map_err(|e| match e {
            CollateralCheckError::Fault(f) => QuoteError::CollateralUnavailable(format!("{}: {f}", pck.key())),
            CollateralCheckError::PckRevoked => QuoteError::Invalid(e.to_string()),
        })?;
        let tcb_evaluation_data_number = checked.tcb_evaluation_data_number;
        if tcb_evaluation_data_number < min_tcb_eval {
            return Err(QuoteError::CollateralUnavailable(format!(
                "{}: collateral of TCB evaluation {tcb_evaluation_data_number} is older than the policy's minimum \
                 {min_tcb_eval}; waiting for fresher collateral",
                pck.key()
            )));
        }
        Ok(Checked { root, pck, collateral, simulated, tcb_evaluation_data_number })
    }
}

/// The collateral a verification would use ([`Verifier::collateral_in_use`]).
pub struct CollateralInUse {
    /// The quote as the platform made it (a compact quote rebuilt, PROTOCOL.md §3.9).
    pub raw: Vec<u8>,
    /// The root the quote chains to (DER).
    pub root: Vec<u8>,
    /// The quote's PCK chain, verified against `root`.
    pub pck: VerifiedPck,
    /// The collateral for `pck`'s key, checked against `root`.
    pub collateral: QuoteCollateralV3,
}

/// What [`Verifier::checked_collateral`] establishes.
struct Checked {
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

/// Intel's SGX Root CA (CN=Intel SGX Root CA, SHA-256 fingerprint 44:A0:19:6B:…:74:D3), the same
/// certificate dcap-qvl trusts; public data.
pub const INTEL_ROOT_CA_DER: &[u8] = include_bytes!("intel_sgx_root_ca.der");

/// Whether the quote's embedded PCK chain holds the certificate `der` (anywhere in the chain).
fn chain_contains(quote: &Quote, der: &[u8]) -> bool {
    use der::Encode;
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
