//! Where verification collateral (TCB info, QE identity, CRLs) comes from: the trait the verifier
//! asks, and the two sources that need no I/O. Files and the PCCS are the node's (`replicatoor::collateral`).
//!
//! Collateral is looked up by [`CollateralKey`] (platform, PCK CA, TEE), read from a PCK chain the
//! verifier has already verified against its root: an unverified quote never chooses what is fetched
//! or cached. A missing, stale or faulty collateral is a local problem: the request waits, it is never
//! refused for it.

pub use super::{
    dates::{format_rfc3339_utc, parse_rfc3339_utc, rfc3339_utc},
    pck::{CollateralKey, VerifiedPck},
};
use dcap_qvl::{quote::Quote, QuoteCollateralV3};
use std::{future::Future, path::PathBuf, pin::Pin};

/// Why collateral could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CollateralError {
    /// No source is configured (simulated-only dev setups).
    #[error("no collateral source configured for genuine quotes (set --collateral-dir)")]
    NotConfigured,
    /// The quote's PCK certificate does not yield an FMSPC.
    #[error("cannot read FMSPC from the quote's PCK certificate: {0}")]
    NoFmspc(String),
    /// No collateral file for this platform.
    #[error("no collateral for {key} in {dir}")]
    Missing {
        /// The collateral key (platform, CA, TEE).
        key: String,
        /// The directory searched.
        dir: PathBuf,
    },
    /// A collateral file exists but cannot be read or parsed.
    #[error("collateral file {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong reading or parsing it.
        reason: String,
    },
    /// Fetching from the PCCS failed (network, HTTP status, or an answer that does not parse).
    #[error("fetching collateral from {url}: {reason}")]
    Fetch {
        /// The PCCS endpoint.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The cached collateral is past its nextUpdate and could not be refreshed yet.
    #[error("cached collateral for FMSPC {fmspc} is stale (nextUpdate {next_update}), refresh pending")]
    Stale {
        /// The platform (lower-case hex).
        fmspc: String,
        /// The collateral's nextUpdate (unix seconds).
        next_update: u64,
    },
    /// Fetched collateral failed its checks against the root, so it was not cached.
    #[error("collateral from {url} for {key} rejected: {fault}")]
    Rejected {
        /// The PCCS endpoint.
        url: String,
        /// What it was fetched for.
        key: String,
        /// The failed check.
        fault: super::pck::CollateralFault,
    },
    /// The simulated PKI could not make collateral (dev and tests only).
    #[error("{0}")]
    Simulated(String),
}

/// A boxed future (not `Send`: dcap-qvl's HTTP client is not).
pub type Prepare<'a> = Pin<Box<dyn Future<Output = Result<(), CollateralError>> + 'a>>;

/// A source of collateral. `collateral_for` never touches the network (verification stays
/// synchronous and reproducible); `prepare` may fetch and cache what it will need.
pub trait CollateralSource: Send + Sync {
    /// The collateral for quotes with this key, from what is already at hand (no I/O).
    fn collateral_for(&self, key: &CollateralKey) -> Result<QuoteCollateralV3, CollateralError>;

    /// Make sure `collateral_for` can answer for the quote whose verified chain is `pck`, at unix
    /// time `now`, with collateral of TCB evaluation `min_tcb_eval` or later (fetch, refresh).
    fn prepare<'a>(&'a self, _pck: &'a VerifiedPck, _now: u64, _min_tcb_eval: u32) -> Prepare<'a> {
        Box::pin(async { Ok(()) })
    }
}

/// No collateral: genuine quotes wait (useful only where every quote is simulated).
pub struct NoCollateral;

impl CollateralSource for NoCollateral {
    fn collateral_for(&self, _: &CollateralKey) -> Result<QuoteCollateralV3, CollateralError> {
        Err(CollateralError::NotConfigured)
    }
}

/// One fixed collateral for every quote (verify-quote --collateral, tests). It is checked against
/// each quote like any other collateral.
pub struct FixedCollateral(pub QuoteCollateralV3);

impl CollateralSource for FixedCollateral {
    fn collateral_for(&self, _: &CollateralKey) -> Result<QuoteCollateralV3, CollateralError> {
        Ok(self.0.clone())
    }
}

/// The platform's FMSPC, from the PCK leaf certificate embedded in the quote (lower-case hex),
/// unverified: for naming collateral files, never for choosing what to fetch.
pub fn fmspc_of(quote: &Quote) -> Result<String, CollateralError> {
    let chain = quote.raw_cert_chain().map_err(|e| CollateralError::NoFmspc(format!("{e:#}")))?;
    let ext =
        dcap_qvl::intel::parse_pck_extension_from_pem(chain).map_err(|e| CollateralError::NoFmspc(format!("{e:#}")))?;
    Ok(hex::encode(ext.fmspc))
}
