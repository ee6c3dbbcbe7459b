//! Where verification collateral (TCB info, QE identity, CRLs) comes from.
//!
//! Collateral is looked up per platform (FMSPC). A missing or stale collateral is a local
//! problem: the request waits, it is never refused for it.

use dcap_qvl::{quote::Quote, QuoteCollateralV3};
use std::path::{Path, PathBuf};

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
    #[error("no collateral for FMSPC {fmspc} in {dir}")]
    Missing { fmspc: String, dir: PathBuf },
    /// A collateral file exists but cannot be read or parsed.
    #[error("collateral file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
}

/// A source of collateral for a quote.
pub trait CollateralSource: Send + Sync {
    fn collateral_for(&self, quote: &Quote) -> Result<QuoteCollateralV3, CollateralError>;
}

/// No collateral: genuine quotes wait (useful only where every quote is simulated).
pub struct NoCollateral;

impl CollateralSource for NoCollateral {
    fn collateral_for(&self, _: &Quote) -> Result<QuoteCollateralV3, CollateralError> {
        Err(CollateralError::NotConfigured)
    }
}

/// One fixed collateral for every quote (verify-quote --collateral, tests).
pub struct FixedCollateral(pub QuoteCollateralV3);

impl FixedCollateral {
    pub fn from_file(path: &Path) -> Result<Self, CollateralError> {
        read_json(path).map(FixedCollateral)
    }
}

impl CollateralSource for FixedCollateral {
    fn collateral_for(&self, _: &Quote) -> Result<QuoteCollateralV3, CollateralError> {
        Ok(self.0.clone())
    }
}

/// A directory of `<fmspc-hex>.json` files in dcap-qvl's `QuoteCollateralV3` JSON format
/// (air-gapped auditors, offline operation).
pub struct DirCollateral {
    dir: PathBuf,
}

impl DirCollateral {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirCollateral { dir: dir.into() }
    }
}

impl CollateralSource for DirCollateral {
    fn collateral_for(&self, quote: &Quote) -> Result<QuoteCollateralV3, CollateralError> {
        let fmspc = fmspc_of(quote)?;
        let path = self.dir.join(format!("{fmspc}.json"));
        if !path.exists() {
            return Err(CollateralError::Missing { fmspc, dir: self.dir.clone() });
        }
        read_json(&path)
    }
}

/// The platform's FMSPC, from the PCK leaf certificate embedded in the quote (lower-case hex).
pub fn fmspc_of(quote: &Quote) -> Result<String, CollateralError> {
    let chain = quote.raw_cert_chain().map_err(|e| CollateralError::NoFmspc(format!("{e:#}")))?;
    let ext =
        dcap_qvl::intel::parse_pck_extension_from_pem(chain).map_err(|e| CollateralError::NoFmspc(format!("{e:#}")))?;
    Ok(hex::encode(ext.fmspc))
}

fn read_json(path: &Path) -> Result<QuoteCollateralV3, CollateralError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CollateralError::Unreadable { path: path.to_owned(), reason: e.to_string() })?;
    serde_json::from_str(&text)
        .map_err(|e| CollateralError::Unreadable { path: path.to_owned(), reason: e.to_string() })
}
