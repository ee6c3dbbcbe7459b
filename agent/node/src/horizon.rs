//! How long a quote's verdict holds as far as its collateral goes: the dates after which the
//! collateral that verifies it now no longer does (TCB info and QE identity `nextUpdate`, the CRLs'
//! `nextUpdate`, the certificates' `notAfter`), and the TCB status it gives now with that status's
//! own horizon (the TCB info's `nextUpdate`, when Intel may publish TCB info that judges the same
//! platform otherwise).
//!
//! Advice for operators (`replicatoor preflight`), never a holder's decision, so it lives outside the
//! trust kernel and reads the collateral the kernel's verifier would use
//! ([`Verifier::collateral_in_use`]): past the earliest date holders wait for fresh collateral (no
//! refusal); what the fresh collateral will say is not known before Intel publishes it.

use dcap_qvl::{verify::QuoteVerifier, QeIdentity, QuoteCollateralV3, QuotePolicy, TcbInfo};
use der::Decode;
use replicatoor_core::attest::{
    collateral::parse_rfc3339_utc,
    pck::{pem_chain, VerifiedPck},
    tcb::TcbStatus,
    QuoteError, Verifier,
};
use std::fmt;

/// One date in a quote's collateral after which it no longer verifies the quote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Expiry {
    /// What expires (e.g. `PCK CRL nextUpdate`, `certificate "Intel SGX PCK Certificate" notAfter`).
    pub what: String,
    /// When (unix seconds).
    pub at: u64,
}

/// How long a quote's verdict holds as far as its collateral goes ([`of`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Horizon {
    /// Every date after which this collateral no longer verifies the quote, earliest first.
    pub expiries: Vec<Expiry>,
    /// The TCB status it gives the quote now, and that status's horizon; `None` when no TCB level
    /// matches (or the quote does not verify: the verdict says why).
    pub tcb: Option<TcbHorizon>,
}

impl Horizon {
    /// The earliest expiry: until then the collateral at hand verifies the quote.
    pub fn valid_until(&self) -> Option<&Expiry> {
        self.expiries.first()
    }
}

/// The TCB status the collateral gives the quote now, and how long that judgement stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TcbHorizon {
    /// The converged TCB status (platform, TDX module, QE), as holders judge it against the policy.
    pub status: TcbStatus,
    /// The advisories that apply to the matched level.
    pub advisory_ids: Vec<String>,
    /// The matched platform TCB level's `tcbDate` (unix seconds): the newer the level, the longer
    /// until a TCB recovery makes it out of date.
    pub tcb_date: u64,
    /// The TCB info's `tcbEvaluationDataNumber` (Intel raises it with each TCB recovery).
    pub evaluation_data_number: u32,
    /// The TCB info's `issueDate` (unix seconds).
    pub issue_date: u64,
    /// The TCB info's `nextUpdate` (unix seconds): Intel may publish TCB info by then that gives this
    /// platform another status, so the status holds no longer than this.
    pub next_update: u64,
}

/// Why the horizon could not be read from collateral that passed its checks (a date that does not parse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("collateral dates: {0}")]
pub struct HorizonError(pub String);

/// How long the verdict on the posted quote `raw` (raw or compact) at `now` holds as far as its collateral goes, with the collateral
/// `verifier` would use, got and checked the same way.
pub fn of(verifier: &Verifier, raw: &[u8], now: u64) -> Result<Horizon, QuoteError> {
    let c = verifier.collateral_in_use(raw, now)?;
    let expiries =
        collateral_expiries(&c.collateral, &c.pck).map_err(|e| QuoteError::CollateralUnavailable(e.to_string()))?;
    Ok(Horizon { expiries, tcb: tcb_horizon(&c.raw, &c.collateral, &c.root, now).ok() })
}

/// Every expiry of the collateral `c` that verifies the quote whose verified chain is `pck`, earliest
/// first: the four signed parts' `nextUpdate` and the `notAfter` of each certificate involved (the
/// quote's PCK chain, the TCB info and QE identity signer chains, the trusted root), each certificate
/// once.
pub fn collateral_expiries(c: &QuoteCollateralV3, pck: &VerifiedPck) -> Result<Vec<Expiry>, HorizonError> {
    let err = |what: &str, e: &dyn fmt::Display| HorizonError(format!("{what}: {e}"));
    let date = |what: &str, s: &str| parse_rfc3339_utc(s).ok_or_else(|| err(what, &format!("{s:?} does not parse")));
    let tcb: TcbInfo = serde_json::from_str(&c.tcb_info).map_err(|e| err("TCB info", &e))?;
    let qe: QeIdentity = serde_json::from_str(&c.qe_identity).map_err(|e| err("QE identity", &e))?;
    let mut out = vec![
        Expiry { what: "TCB info nextUpdate".into(), at: date("TCB info nextUpdate", &tcb.next_update)? },
        Expiry { what: "QE identity nextUpdate".into(), at: date("QE identity nextUpdate", &qe.next_update)? },
    ];
    for (name, der) in [("root CA CRL", &c.root_ca_crl), ("PCK CRL", &c.pck_crl)] {
        let crl: x509_cert::crl::CertificateList =
            x509_cert::crl::CertificateList::from_der(der).map_err(|e| err(name, &e))?;
        let next = crl.tbs_cert_list.next_update.ok_or_else(|| err(name, &"no nextUpdate"))?;
        out.push(Expiry { what: format!("{name} nextUpdate"), at: next.to_unix_duration().as_secs() });
    }
    let signers = [
        ("TCB info signer chain", &c.tcb_info_issuer_chain),
        ("QE identity signer chain", &c.qe_identity_issuer_chain),
    ];
    let mut certs: Vec<Vec<u8>> = pck.chain_der().to_vec();
    for (name, pem) in signers {
        certs.extend(pem_chain(pem).map_err(|e| err(name, &e))?);
    }
    certs.push(pck.root_der().to_vec());
    let mut seen = std::collections::HashSet::new();
    for der in certs.iter().filter(|d| seen.insert(d.as_slice())) {
        let cert = x509_cert::Certificate::from_der(der).map_err(|e| err("certificate", &e))?;
        let tbs = cert.tbs_certificate();
        out.push(Expiry {
            what: format!("certificate \"{}\" notAfter", common_name(&tbs.subject().to_string())),
            at: tbs.validity().not_after.to_unix_duration().as_secs(),
        });
    }
    out.sort_by(|a, b| (a.at, &a.what).cmp(&(b.at, &b.what)));
    Ok(out)
}

/// The TCB status `c` gives quote `raw` at `now` under `root`, with its horizon; `Err` when no TCB
/// level matches or the quote does not verify (the verdict then says why).
pub fn tcb_horizon(raw: &[u8], c: &QuoteCollateralV3, root: &[u8], now: u64) -> Result<TcbHorizon, HorizonError> {
    // dcap-qvl's claims: the same verification as the verifier's, plus the matched level, with none
    // of dcap-qvl's own policy (the contract's policy is the pipeline's business). Debug TDs too.
    let claims = QuoteVerifier::new(root.to_vec())
        .allow_debug(true)
        .verify_with_policy(raw, c.clone(), now, &QuotePolicy::claims_only(now))
        .map_err(|e| HorizonError(format!("{e:#}")))?;
    let status = claims.tcb.status.to_string().parse::<TcbStatus>().map_err(|e| HorizonError(e.to_string()))?;
    let tcb: TcbInfo = serde_json::from_str(&c.tcb_info).map_err(|e| HorizonError(format!("TCB info: {e}")))?;
    let date = |s: &str| parse_rfc3339_utc(s).ok_or_else(|| HorizonError(format!("TCB info date {s:?}")));
    Ok(TcbHorizon {
        status,
        advisory_ids: claims.tcb.advisory_ids,
        tcb_date: claims.platform.tcb_date_tag,
        evaluation_data_number: tcb.tcb_evaluation_data_number,
        issue_date: date(&tcb.issue_date)?,
        next_update: date(&tcb.next_update)?,
    })
}

/// The `CN=` value of an RFC 4514 name, or the whole name.
fn common_name(name: &str) -> &str {
    name.split(',').find_map(|rdn| rdn.trim().strip_prefix("CN=")).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcap_qvl::quote::Quote;
    use replicatoor_core::attest::{
        collateral::format_rfc3339_utc, pck::verify_pck_chain, verifier::INTEL_ROOT_CA_DER,
    };

    fn fixture(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dcap-qvl-samples");
        std::fs::read(dir.join(name)).expect("fixture")
    }

    fn at(s: &str) -> u64 {
        parse_rfc3339_utc(s).expect("date")
    }

    /// `(what, when)` pairs, the dates as written.
    fn expiries(quote: &str, collateral: &str, now: u64) -> Vec<(String, String)> {
        let q = Quote::parse(&fixture(quote)).expect("quote");
        let pck = verify_pck_chain(&q, INTEL_ROOT_CA_DER, now).expect("Intel's chain");
        let c: QuoteCollateralV3 = serde_json::from_slice(&fixture(collateral)).expect("collateral");
        let e = collateral_expiries(&c, &pck).expect("dates");
        e.into_iter().map(|e| (e.what, format_rfc3339_utc(e.at))).collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    // Expected values read by hand from the fixtures (`openssl crl -nextupdate`, `openssl x509
    // -enddate` on the PEM blocks, and the JSON's nextUpdate fields).

    #[test]
    fn genuine_tdx_collateral_holds_until_the_pck_crl_next_update() {
        let now = at("2025-07-01T00:00:00Z");
        assert_eq!(
            expiries("tdx_quote", "tdx_quote_collateral.json", now),
            pairs(&[
                ("PCK CRL nextUpdate", "2025-07-19T10:00:35Z"),
                ("TCB info nextUpdate", "2025-07-19T10:16:03Z"),
                ("QE identity nextUpdate", "2025-07-19T10:32:27Z"),
                ("root CA CRL nextUpdate", "2026-04-03T11:21:57Z"),
                ("certificate \"Intel SGX PCK Certificate\" notAfter", "2032-02-06T23:25:51Z"),
                ("certificate \"Intel SGX TCB Signing\" notAfter", "2032-05-06T09:25:00Z"),
                ("certificate \"Intel SGX PCK Platform CA\" notAfter", "2033-05-21T10:50:10Z"),
                ("certificate \"Intel SGX Root CA\" notAfter", "2049-12-31T23:59:59Z"),
            ])
        );
        let raw = fixture("tdx_quote");
        let c: QuoteCollateralV3 = serde_json::from_slice(&fixture("tdx_quote_collateral.json")).unwrap();
        let t = tcb_horizon(&raw, &c, INTEL_ROOT_CA_DER, now).expect("a matched level");
        assert_eq!(
            t,
            TcbHorizon {
                status: TcbStatus::UpToDate,
                advisory_ids: vec![],
                tcb_date: at("2024-03-13T00:00:00Z"),
                evaluation_data_number: 17,
                issue_date: at("2025-06-19T10:16:03Z"),
                next_update: at("2025-07-19T10:16:03Z"),
            }
        );
        // dcap-qvl's own weakest link over the same sources is the first date here.
        let claims = QuoteVerifier::new(INTEL_ROOT_CA_DER.to_vec())
            .verify_with_policy(&raw, c, now, &QuotePolicy::claims_only(now))
            .expect("claims");
        assert_eq!(claims.earliest_expiration_date, at("2025-07-19T10:00:35Z"));
    }

    #[test]
    fn the_verifier_reads_the_horizon_from_the_collateral_it_verifies_with() {
        use replicatoor_core::attest::collateral::FixedCollateral;
        let now = at("2025-07-01T00:00:00Z");
        let c: QuoteCollateralV3 = serde_json::from_slice(&fixture("tdx_quote_collateral.json")).unwrap();
        let v = Verifier::new(Box::new(FixedCollateral(c)));
        let h = of(&v, &fixture("tdx_quote"), now).expect("horizon");
        let first = h.valid_until().expect("dates");
        assert_eq!((first.what.as_str(), first.at), ("PCK CRL nextUpdate", at("2025-07-19T10:00:35Z")));
        assert_eq!(h.tcb.map(|t| t.status), Some(TcbStatus::UpToDate));
        // Past that date the same collateral no longer verifies the quote: no horizon, a wait.
        let late = of(&v, &fixture("tdx_quote"), at("2025-07-19T10:00:36Z"));
        assert!(matches!(late, Err(replicatoor_core::attest::QuoteError::CollateralUnavailable(_))), "{late:?}");
    }

    #[test]
    fn a_quote_no_level_matches_has_collateral_dates_but_no_tcb_horizon() {
        let now = at("2026-03-01T00:00:00Z");
        let e = expiries("tdx_quote_outdated", "tdx_quote_outdated_collateral.json", now);
        assert_eq!(
            e[..4],
            pairs(&[
                ("PCK CRL nextUpdate", "2026-03-20T10:41:15Z"),
                ("QE identity nextUpdate", "2026-03-20T10:42:15Z"),
                ("TCB info nextUpdate", "2026-03-20T10:58:51Z"),
                ("root CA CRL nextUpdate", "2026-04-03T11:21:57Z"),
            ])[..]
        );
        assert_eq!(e[4], pairs(&[("certificate \"Intel SGX TCB Signing\" notAfter", "2032-05-06T09:25:00Z")])[0]);
        assert_eq!(e[5], pairs(&[("certificate \"Intel SGX PCK Certificate\" notAfter", "2033-01-23T18:09:41Z")])[0]);
        let c: QuoteCollateralV3 = serde_json::from_slice(&fixture("tdx_quote_outdated_collateral.json")).unwrap();
        let err = tcb_horizon(&fixture("tdx_quote_outdated"), &c, INTEL_ROOT_CA_DER, now).unwrap_err();
        assert!(err.0.contains("No matching TCB level"), "{err}");
    }

    #[test]
    fn dates_round_trip() {
        for s in ["1970-01-01T00:00:00Z", "2025-07-19T10:00:35Z", "2024-02-29T12:00:00Z", "2049-12-31T23:59:59Z"] {
            assert_eq!(format_rfc3339_utc(at(s)), s);
        }
    }
}
