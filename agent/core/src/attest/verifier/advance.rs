//! What a verifier does ahead of, or beside, a verification, and that decides nothing: fetching the
//! collateral a genuine quote will need ([`Verifier::prepare`]: a failure is a wait, and what it hands
//! on is only signature checks ring passed, `sigmemo.rs`), and telling an operator which collateral a
//! verification would use (`preflight`). Not counted on the trust path (TRUST.md section 1): a bug here
//! can delay a request or mislead an operator's advice, never accept a quote.

use super::{
    chain_contains, read_pck_chain, sigmemo, verify_read_chain, Checked, Prepared, Quote, QuoteCollateralV3,
    QuoteError, VerifiedPck, Verifier, INTEL_ROOT_CA_DER, MAX_QUOTE_LEN, SIMULATED_ROOT_CA_DER, TEE_TYPE_TDX,
};

impl Verifier {
    /// Fetch or refresh what verification of the posted quote (raw or compact) at `now` under the TCB
    /// evaluation floor `min_tcb_eval` will need (genuine quotes only; a failure here means "wait",
    /// never "refuse"). The PCK chain checks it makes are handed to [`Verifier::verify_prepared`].
    ///
    /// Only for a TDX quote whose PCK chain verifies against Intel's root: the collateral key comes
    /// from that verified certificate, so junk (or a forged FMSPC in a certificate that merely names
    /// Intel's root as its last link) neither calls the PCCS nor chooses what is cached for a
    /// genuine platform.
    pub async fn prepare(&self, posted: &[u8], now: u64, min_tcb_eval: u32) -> Result<Prepared, QuoteError> {
        let mut checked = Checked::default();
        if posted.len() > MAX_QUOTE_LEN {
            return Ok(Prepared(checked));
        }
        let Ok(raw) = replicatoor_compact_quote::to_raw(posted) else { return Ok(Prepared(checked)) };
        let Ok(quote) = Quote::parse(&raw) else { return Ok(Prepared(checked)) };
        let chain = read_pck_chain(&quote);
        if quote.header.tee_type != TEE_TYPE_TDX || chain_contains(&quote, &chain, SIMULATED_ROOT_CA_DER) {
            return Ok(Prepared(checked));
        }
        let verified =
            sigmemo::within(&self.memo, &mut checked, || verify_read_chain(&quote, chain, INTEL_ROOT_CA_DER, now));
        let Ok(pck) = verified else { return Ok(Prepared(checked)) };
        self.collateral
            .prepare(&pck, now, min_tcb_eval)
            .await
            .map_err(|e| QuoteError::CollateralUnavailable(e.to_string()))?;
        Ok(Prepared(checked))
    }

    /// The root, verified PCK chain and checked collateral that [`Verifier::verify`] would use for
    /// the posted quote (raw or compact) at `now` (any TCB evaluation). For advice to operators
    /// (`preflight`'s horizon); holders never call it.
    pub fn collateral_in_use(&self, posted: &[u8], now: u64) -> Result<CollateralInUse, QuoteError> {
        if posted.len() > MAX_QUOTE_LEN {
            return Err(QuoteError::Malformed(format!(
                "{} bytes exceeds the {MAX_QUOTE_LEN} byte limit",
                posted.len()
            )));
        }
        let raw =
            replicatoor_compact_quote::to_raw(posted).map_err(|e| QuoteError::Malformed(e.to_string()))?.into_owned();
        let quote = Quote::parse(&raw).map_err(|e| QuoteError::Malformed(format!("{e:#}")))?;
        let parts = self.collateral_for_quote(&quote, now, 0, &mut Checked::default())?;
        Ok(CollateralInUse { raw, root: parts.root, pck: parts.pck, collateral: parts.collateral })
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
