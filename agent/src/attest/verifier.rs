//! DCAP quote verification with dcap-qvl. The only place a [`VerifiedQuote`] is made.
//!
//! The caller passes `now` (the request's block time), so verification is reproducible by auditors
//! and tests; nothing here reads the clock.

use super::{
    collateral::{CollateralError, CollateralSource},
    quote::Measurements,
    quote::TEE_TYPE_TDX,
    simulated,
    tcb::TcbStatus,
};
use crate::refusal::Refusal;
use dcap_qvl::{quote::Quote, verify::QuoteVerifier, QuoteCollateralV3};

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
    WrongTeeType { version: u16, tee_type: u32 },
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
    simulated: bool,
    quote_version: u16,
}

impl VerifiedQuote {
    pub fn measurements(&self) -> &Measurements {
        &self.measurements
    }
    pub fn tcb_status(&self) -> TcbStatus {
        self.tcb_status
    }
    pub fn advisory_ids(&self) -> &[String] {
        &self.advisory_ids
    }
    /// True when the quote chains to the simulated PKI (dev/test only).
    pub fn is_simulated(&self) -> bool {
        self.simulated
    }
    pub fn quote_version(&self) -> u16 {
        self.quote_version
    }
}

/// Verifies quotes against Intel's root, and the simulated root only when explicitly trusted.
pub struct Verifier {
    collateral: Box<dyn CollateralSource>,
    trust_simulated: bool,
}

impl Verifier {
    /// A production verifier: Intel's root only.
    pub fn new(collateral: Box<dyn CollateralSource>) -> Self {
        Verifier { collateral, trust_simulated: false }
    }

    /// Also trust quotes from the simulated PKI. The contract's policy must allow them too.
    pub fn dangerously_trust_simulated_quotes(mut self) -> Self {
        self.trust_simulated = true;
        self
    }

    pub fn trusts_simulated(&self) -> bool {
        self.trust_simulated
    }

    /// Verify `raw` at unix time `now`.
    pub fn verify(&self, raw: &[u8], now: u64) -> Result<VerifiedQuote, QuoteError> {
        if raw.len() > MAX_QUOTE_LEN {
            return Err(QuoteError::Malformed(format!("{} bytes exceeds the {MAX_QUOTE_LEN} byte limit", raw.len())));
        }
        let quote = Quote::parse(raw).map_err(|e| QuoteError::Malformed(format!("{e:#}")))?;
        let (version, tee_type) = (quote.header.version, quote.header.tee_type);
        if tee_type != TEE_TYPE_TDX || !(4..=5).contains(&version) {
            return Err(QuoteError::WrongTeeType { version, tee_type });
        }
        let measurements =
            Measurements::from_report(&quote.report).ok_or(QuoteError::WrongTeeType { version, tee_type })?;
        let simulated = simulated::chains_to_simulated_root(&quote);
        let (verifier, collateral): (QuoteVerifier, QuoteCollateralV3) = if simulated {
            if !self.trust_simulated {
                return Err(QuoteError::SimulatedNotTrusted);
            }
            let pki = simulated::pki().map_err(QuoteError::CollateralUnavailable)?;
            (
                QuoteVerifier::new(pki.root_ca_der()),
                simulated::collateral(pki, now).map_err(QuoteError::CollateralUnavailable)?,
            )
        } else {
            let c = self.collateral.collateral_for(&quote).map_err(|e| match e {
                // The quote's own PCK chain yields no FMSPC: the requester's fault (dcap-qvl refuses
                // the same chain as invalid), so refuse it rather than wait for collateral forever.
                CollateralError::NoFmspc(_) => QuoteError::Invalid(e.to_string()),
                _ => QuoteError::CollateralUnavailable(e.to_string()),
            })?;
            (QuoteVerifier::new_prod(), c)
        };
        // Debug TDs are judged by the contract's policy in the pipeline, with their own refusal code.
        let report =
            verifier.allow_debug(true).verify(raw, &collateral, now).map_err(|e| classify(format!("{e:#}")))?;
        let tcb_status =
            report.status.parse::<TcbStatus>().map_err(|e| QuoteError::Invalid(format!("dcap-qvl reported {e}")))?;
        Ok(VerifiedQuote {
            measurements,
            tcb_status,
            advisory_ids: report.advisory_ids,
            simulated,
            quote_version: version,
        })
    }
}

/// Sort dcap-qvl's error text into what it means for the requester.
fn classify(msg: String) -> QuoteError {
    let m = msg.to_ascii_lowercase();
    if m.contains("revoked") || m.contains("no matching tcb level") {
        QuoteError::Tcb(msg)
    } else if (m.contains("tcbinfo") || m.contains("qe identity") || m.contains("crl"))
        && (m.contains("expired") || m.contains("in the future"))
        || m.contains("fmspc mismatch")
        || m.contains("non-tdx tcb info")
    {
        QuoteError::CollateralUnavailable(msg)
    } else {
        QuoteError::Invalid(msg)
    }
}
