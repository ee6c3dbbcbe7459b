//! The quote's PCK certificate chain, verified against the pinned root before anything is fetched or
//! cached for it, and collateral checked against the same root, step by step, for what that chain
//! selects. Each failure is typed by the step that failed: a collateral fault is the holder's (wait,
//! refetch), a PCK chain that does not verify or is revoked is the requester's (refuse).
//!
//! The checks mirror dcap-qvl's collateral steps (the same webpki fork, algorithm and revocation
//! options), so collateral that passes here passes them in dcap-qvl too, and a later dcap-qvl failure
//! is the quote's. Without this, dcap-qvl reports a broken collateral signer chain in the same words
//! as a broken PCK chain, and a junk quote whose chain merely ends in Intel's root could choose what
//! is fetched and cached for a genuine platform.

use dcap_qvl::{config::PckCa, quote::Quote, QeIdentity, QuoteCollateralV3, TcbInfo};
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use std::{fmt, time::Duration};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy,
};

/// Intel's chains hold a PCK CA and the root above the leaf; a longer list only costs path-building
/// time (dcap-qvl caps it at the same number).
const MAX_INTERMEDIATES: usize = 4;

/// The one signature algorithm of Intel's PKI (and of dcap-qvl's verification), through the
/// signature memo of the enclosing [`super::sigmemo::within`], if any.
fn sig_alg() -> &'static dyn SignatureVerificationAlgorithm {
    &super::sigmemo::MEMO_ECDSA
}

/// The TEE flavour whose collateral a quote needs (TCB info and QE identity differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tee {
    /// An SGX enclave quote.
    Sgx,
    /// A TDX TD quote.
    Tdx,
}

impl Tee {
    /// Lower-case name, as in PCS URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Tee::Sgx => "sgx",
            Tee::Tdx => "tdx",
        }
    }
}

/// Everything that selects a quote's collateral: the platform (FMSPC) and the PCK CA (whose CRL it
/// needs), read from a verified PCK certificate, and the TEE flavour.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CollateralKey {
    /// The platform's FMSPC.
    pub fmspc: [u8; 6],
    /// The CA that issued the PCK certificate (processor or platform).
    pub ca: PckCa,
    /// SGX or TDX.
    pub tee: Tee,
}

impl CollateralKey {
    /// The FMSPC in lower-case hex.
    pub fn fmspc_hex(&self) -> String {
        hex::encode(self.fmspc)
    }

    /// The CA as PCS URLs name it (`processor`, `platform`).
    pub fn ca_id(&self) -> &'static str {
        self.ca.as_id_str()
    }

    /// A file name stem unique to this key: `<fmspc>-<ca>-<tee>`.
    pub fn file_stem(&self) -> String {
        format!("{}-{}-{}", self.fmspc_hex(), self.ca_id(), self.tee.as_str())
    }
}

impl fmt::Display for CollateralKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FMSPC {} ({} CA, {})", self.fmspc_hex(), self.ca_id(), self.tee.as_str())
    }
}

/// A quote's PCK chain that verifies against `root` (revocation is checked later, with the
/// collateral's CRLs), and the collateral key read from its leaf.
#[derive(Debug, Clone)]
pub struct VerifiedPck {
    key: CollateralKey,
    /// DER, leaf first, as the quote carries it.
    chain: Vec<Vec<u8>>,
    root: Vec<u8>,
    /// The key of the CA that issued the leaf (on the verified path): the PCK CRL's signer.
    issuer_spki: Vec<u8>,
}

impl VerifiedPck {
    /// What selects this quote's collateral.
    pub fn key(&self) -> &CollateralKey {
        &self.key
    }

    /// The root the chain was verified against.
    pub fn root_der(&self) -> &[u8] {
        &self.root
    }

    /// The quote's PCK chain (DER, leaf first, as the quote carries it).
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain
    }
}

/// Why a quote's PCK chain is not trusted: the requester's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PckChainError {
    /// No PEM certificate chain in the quote's certification data.
    #[error("the quote carries no usable PCK certificate chain: {0}")]
    NoChain(String),
    /// The chain does not lead to the trusted root (bad signature, wrong issuer, expired, …).
    #[error("the PCK certificate chain does not verify against the trusted root: {0}")]
    Untrusted(String),
    /// A verified leaf without Intel's SGX extension (no FMSPC).
    #[error("the PCK certificate has no readable Intel extension: {0}")]
    NoExtension(String),
    /// The header names neither SGX nor TDX.
    #[error("the quote names TEE type {0:#x}, neither SGX nor TDX")]
    UnknownTee(u32),
}

/// Verify `quote`'s PCK certificate chain against `root_der` at unix time `now`.
pub fn verify_pck_chain(quote: &Quote, root_der: &[u8], now: u64) -> Result<VerifiedPck, PckChainError> {
    verify_read_chain(quote, read_pck_chain(quote), root_der, now)
}

/// The quote's PCK certificate chain (DER, leaf first), unverified: as dcap-qvl reads it.
pub fn read_pck_chain(quote: &Quote) -> Result<Vec<Vec<u8>>, PckChainError> {
    dcap_qvl::intel::extract_cert_chain(quote).map_err(|e| PckChainError::NoChain(format!("{e:#}")))
}

/// [`verify_pck_chain`], with `chain` from [`read_pck_chain`] of the same quote (read once per quote).
pub fn verify_read_chain(
    quote: &Quote,
    chain: Result<Vec<Vec<u8>>, PckChainError>,
    root_der: &[u8],
    now: u64,
) -> Result<VerifiedPck, PckChainError> {
    let tee = match quote.header.tee_type {
        0x00 => Tee::Sgx,
        0x81 => Tee::Tdx,
        other => return Err(PckChainError::UnknownTee(other)),
    };
    let chain = chain?;
    let (leaf, rest) = chain.split_first().ok_or_else(|| PckChainError::NoChain("no certificate".into()))?;
    let root = CertificateDer::from(root_der);
    let anchor = webpki::anchor_from_trusted_cert(&root)
        .map_err(|e| PckChainError::Untrusted(format!("the trusted root does not parse: {e:?}")))?;
    let intermediates: Vec<CertificateDer<'_>> = rest.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
    let on_path =
        verify_path(leaf, &intermediates, &anchor, now, None).map_err(|e| PckChainError::Untrusted(e.to_string()))?;
    let ext = dcap_qvl::intel::parse_pck_extension(leaf).map_err(|e| PckChainError::NoExtension(format!("{e:#}")))?;
    let ca = dcap_qvl::intel::pck_ca(leaf).map_err(|e| PckChainError::NoExtension(format!("{e:#}")))?;
    Ok(VerifiedPck {
        key: CollateralKey { fmspc: ext.fmspc, ca, tee },
        chain,
        root: root_der.to_vec(),
        issuer_spki: on_path.issuer_spki,
    })
}

/// The two signed parts of collateral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The platform's TCB info.
    TcbInfo,
    /// The quoting enclave's identity.
    QeIdentity,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::TcbInfo => "TCB info",
            Part::QeIdentity => "QE identity",
        })
    }
}

/// Why collateral is unusable for a quote. Always the holder's problem: wait and refetch, never refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollateralFault {
    /// The root CA CRL does not parse or is not signed by the root.
    #[error("root CA CRL: {0}")]
    RootCaCrl(String),
    /// The PCK CRL does not parse.
    #[error("PCK CRL: {0}")]
    PckCrl(String),
    /// The root CA CRL does not vouch for the root (revoked, expired CRL, …).
    #[error("root CA revocation status: {0}")]
    RootRevocation(String),
    /// A signed part does not parse.
    #[error("{part} does not parse: {reason}")]
    Unparsable {
        /// Which part.
        part: Part,
        /// The parser's reason.
        reason: String,
    },
    /// A signed part is not valid at the verification time.
    #[error("{part} is not valid at {now} (issued {issued}, next update {next_update})")]
    OutOfWindow {
        /// Which part.
        part: Part,
        /// The verification time (unix seconds).
        now: u64,
        /// Its issue date, as written.
        issued: String,
        /// Its next update, as written.
        next_update: String,
    },
    /// A signed part's signer certificate does not verify to the root (directly) or is revoked.
    #[error("{part} signer chain: {reason}")]
    SignerChain {
        /// Which part.
        part: Part,
        /// What failed.
        reason: String,
    },
    /// A signed part's signature does not verify with its signer's key.
    #[error("{part} signature: {reason}")]
    Signature {
        /// Which part.
        part: Part,
        /// What failed.
        reason: String,
    },
    /// A genuine part, for another platform or TEE than the quote's.
    #[error("{part} is for {found}, the quote needs {wanted}")]
    WrongSubject {
        /// Which part.
        part: Part,
        /// What it is for.
        found: String,
        /// What the quote needs.
        wanted: String,
    },
    /// The CRLs cannot settle the PCK chain's revocation status (a CRL of another CA or not signed by
    /// the chain's CA, expired, …).
    #[error("the CRLs do not cover the quote's PCK chain: {0}")]
    PckRevocation(String),
}

/// The outcome of checking collateral against a verified PCK chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollateralCheckError {
    /// The collateral is at fault.
    #[error(transparent)]
    Fault(#[from] CollateralFault),
    /// Sound collateral revokes the quote's PCK certificate (or its CA): the requester's fault.
    #[error("the quote's PCK certificate chain is revoked by Intel's CRL")]
    PckRevoked,
}

/// A collateral once [`check_collateral_itself`] passed: its CRLs, for the PCK chain's revocation.
pub struct CheckedCollateral {
    crls: [CertRevocationList<'static>; 2],
}

/// Check `c` as dcap-qvl's collateral steps would, plus that it is for `pck`'s key: CRLs signed and
/// current, TCB info and QE identity signed by a certificate the root issued directly, inside their
/// validity window, for this platform and TEE; and the PCK chain's revocation status under these
/// CRLs. `c.pck_certificate_chain` is ignored (each quote is verified with its own chain).
pub fn check_collateral(
    c: &QuoteCollateralV3,
    pck: &VerifiedPck,
    now: u64,
) -> Result<CheckedCollateral, CollateralCheckError> {
    let checked = check_collateral_itself(c, pck, now)?;
    check_pck_revocation(&checked, pck, now)?;
    Ok(checked)
}

impl std::fmt::Debug for CheckedCollateral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedCollateral").finish_non_exhaustive()
    }
}

/// The first part of [`check_collateral`]: everything about `c` that needs only `pck`'s root, key and
/// PCK CA, not its leaf. The signatures it verifies are the collateral's own (CRLs, TCB info and QE
/// identity with their signers), the same for every quote `c` serves.
pub fn check_collateral_itself(
    c: &QuoteCollateralV3,
    pck: &VerifiedPck,
    now: u64,
) -> Result<CheckedCollateral, CollateralFault> {
    let root = CertificateDer::from(pck.root.as_slice());
    let anchor = webpki::anchor_from_trusted_cert(&root)
        .map_err(|e| CollateralFault::RootCaCrl(format!("the trusted root does not parse: {e:?}")))?;
    let root_crl =
        OwnedCertRevocationList::from_der_verified(&c.root_ca_crl, &anchor.subject_public_key_info, &[sig_alg()])
            .map_err(|e| CollateralFault::RootCaCrl(format!("{e:?}")))?;
    // Signed by the CA that issued the quote's PCK certificate (Intel's processor or platform CA, one
    // key for all of its platforms): checked here, with the collateral's own signatures, not per quote.
    // A CRL of the other CA (or a forged one) does not cover the chain; one that does not parse is broken.
    let pck_crl = OwnedCertRevocationList::from_der_verified(&c.pck_crl, &pck.issuer_spki, &[sig_alg()]).map_err(
        |e| match e {
            webpki::Error::InvalidCrlSignatureForPublicKey => CollateralFault::PckRevocation(format!(
                "the PCK CRL is not signed by the CA that issued the quote's PCK certificate: {e:?}"
            )),
            e => CollateralFault::PckCrl(format!("{e:?}")),
        },
    )?;
    let crls: [CertRevocationList<'static>; 2] = [root_crl.into(), pck_crl.into()];
    webpki::check_single_cert_revocation(&pck.root, &crls.each_ref(), &[sig_alg()], unix(now))
        .map_err(|e| CollateralFault::RootRevocation(format!("{e:?}")))?;

    let tcb: TcbInfo = serde_json::from_str(&c.tcb_info)
        .map_err(|e| CollateralFault::Unparsable { part: Part::TcbInfo, reason: e.to_string() })?;
    check_window(Part::TcbInfo, &tcb.issue_date, &tcb.next_update, now)?;
    check_signed(
        Part::TcbInfo,
        &c.tcb_info_issuer_chain,
        c.tcb_info.as_bytes(),
        &c.tcb_info_signature,
        &anchor,
        &crls,
        now,
    )?;
    let key = pck.key();
    let want_id = match key.tee {
        Tee::Tdx => "TDX",
        Tee::Sgx => "SGX",
    };
    if tcb.id != want_id || !tcb.fmspc.eq_ignore_ascii_case(&key.fmspc_hex()) {
        return Err(CollateralFault::WrongSubject {
            part: Part::TcbInfo,
            found: format!("{} FMSPC {}", tcb.id, tcb.fmspc.to_ascii_lowercase()),
            wanted: format!("{want_id} FMSPC {}", key.fmspc_hex()),
        });
    }

    let qe: QeIdentity = serde_json::from_str(&c.qe_identity)
        .map_err(|e| CollateralFault::Unparsable { part: Part::QeIdentity, reason: e.to_string() })?;
    check_window(Part::QeIdentity, &qe.issue_date, &qe.next_update, now)?;
    check_signed(
        Part::QeIdentity,
        &c.qe_identity_issuer_chain,
        c.qe_identity.as_bytes(),
        &c.qe_identity_signature,
        &anchor,
        &crls,
        now,
    )?;
    // The identities and versions dcap-qvl accepts for each TEE.
    let (want_qe, versions): (&str, &[u8]) = match key.tee {
        Tee::Tdx => ("TD_QE", &[2, 3]),
        Tee::Sgx => ("QE", &[2]),
    };
    if qe.id != want_qe || !versions.contains(&qe.version) {
        return Err(CollateralFault::WrongSubject {
            part: Part::QeIdentity,
            found: format!("{} version {}", qe.id, qe.version),
            wanted: format!("{want_qe} version {versions:?}"),
        });
    }

    Ok(CheckedCollateral { crls })
}

/// The second part of [`check_collateral`]: `pck`'s chain under `crls`. The chain verified without
/// CRLs, so with them only revocation can fail: revoked is the quote's fault; anything else (a CRL
/// of the other CA, an expired CRL) is the collateral's.
pub fn check_pck_revocation(
    checked: &CheckedCollateral,
    pck: &VerifiedPck,
    now: u64,
) -> Result<(), CollateralCheckError> {
    let root = CertificateDer::from(pck.root.as_slice());
    let anchor = webpki::anchor_from_trusted_cert(&root)
        .map_err(|e| CollateralFault::PckRevocation(format!("the trusted root does not parse: {e:?}")))?;
    let (leaf, rest) = pck.chain.split_first().ok_or(CollateralFault::PckRevocation("empty PCK chain".into()))?;
    let intermediates: Vec<CertificateDer<'_>> = rest.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
    match verify_path(leaf, &intermediates, &anchor, now, Some(&checked.crls)) {
        Ok(_) => Ok(()),
        Err(PathError::Webpki(webpki::Error::CertRevoked)) => Err(CollateralCheckError::PckRevoked),
        Err(e) => Err(CollateralFault::PckRevocation(e.to_string()).into()),
    }
}

fn check_window(part: Part, issued: &str, next_update: &str, now: u64) -> Result<(), CollateralFault> {
    let parse = |s: &str| {
        super::dates::parse_rfc3339_utc(s)
            .ok_or_else(|| CollateralFault::Unparsable { part, reason: format!("date {s:?} does not parse") })
    };
    if now < parse(issued)? || now > parse(next_update)? {
        return Err(CollateralFault::OutOfWindow { part, now, issued: issued.into(), next_update: next_update.into() });
    }
    Ok(())
}

/// `body` signed (raw `r ‖ s`) by the leaf of the PEM chain `issuer_chain`, which the root issued directly.
fn check_signed(
    part: Part,
    issuer_chain: &str,
    body: &[u8],
    signature: &[u8],
    anchor: &TrustAnchor<'_>,
    crls: &[CertRevocationList<'_>],
    now: u64,
) -> Result<(), CollateralFault> {
    let chain_err = |reason: String| CollateralFault::SignerChain { part, reason };
    let certs = pem_chain(issuer_chain).map_err(chain_err)?;
    let (leaf, rest) = certs.split_first().ok_or_else(|| chain_err("no certificate".into()))?;
    let intermediates: Vec<CertificateDer<'_>> = rest.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
    let on_path = verify_path(leaf, &intermediates, anchor, now, Some(crls)).map_err(|e| chain_err(e.to_string()))?;
    if on_path.intermediates != 0 {
        return Err(chain_err("the signer is not issued directly by the root".into()));
    }
    let sig_err = |reason: String| CollateralFault::Signature { part, reason };
    let der = (dcap_qvl::verify::ring::backend().encode_ecdsa)(signature).map_err(|e| sig_err(format!("{e:#}")))?;
    let leaf = CertificateDer::from(leaf.as_slice());
    let signer = EndEntityCert::try_from(&leaf).map_err(|e| chain_err(format!("{e:?}")))?;
    signer.verify_signature(sig_alg(), body, &der).map_err(|e| sig_err(format!("{e:?}")))
}

/// DER certificates of a PEM chain (collateral issuer chains are PEM text), read as dcap-qvl reads
/// them (the same PEM reader, every block); webpki then parses each. A chain that does not read is a
/// collateral fault (a retry), never a refusal.
pub fn pem_chain(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(text).map_err(|e| e.to_string())?;
    Ok(blocks.into_iter().map(pem::Pem::into_contents).collect())
}

#[derive(Debug)]
enum PathError {
    TooManyIntermediates(usize),
    Webpki(webpki::Error),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::TooManyIntermediates(n) => {
                write!(f, "{n} intermediate certificates (at most {MAX_INTERMEDIATES})")
            }
            PathError::Webpki(e) => write!(f, "{e:?}"),
        }
    }
}

/// Verify `leaf` to `anchor` through `intermediates` at `now`, checking every certificate on the path
/// against `crls` when given (unknown status refused, expired CRLs refused, as dcap-qvl does).
fn verify_path(
    leaf: &[u8],
    intermediates: &[CertificateDer<'_>],
    anchor: &TrustAnchor<'_>,
    now: u64,
    crls: Option<&[CertRevocationList<'_>]>,
) -> Result<OnPath, PathError> {
    if intermediates.len() > MAX_INTERMEDIATES {
        return Err(PathError::TooManyIntermediates(intermediates.len()));
    }
    let leaf = CertificateDer::from(leaf);
    let cert = EndEntityCert::try_from(&leaf).map_err(PathError::Webpki)?;
    let crl_refs: Vec<&CertRevocationList<'_>> = crls.unwrap_or_default().iter().collect();
    let revocation = match crls {
        None => None,
        Some(_) => Some(
            RevocationOptionsBuilder::new(&crl_refs)
                .map_err(|_| PathError::Webpki(webpki::Error::UnknownRevocationStatus))?
                .with_depth(RevocationCheckDepth::Chain)
                .with_status_policy(UnknownStatusPolicy::Deny)
                .with_expiration_policy(ExpirationPolicy::Enforce)
                .build(),
        ),
    };
    let anchors = [anchor.clone()];
    let path = cert
        .verify_for_usage(&[sig_alg()], &anchors, intermediates, unix(now), KeyUsage::server_auth(), revocation, None)
        .map_err(PathError::Webpki)?;
    // The issuer's SubjectPublicKeyInfo without its outer SEQUENCE header, as webpki's CRL API takes it.
    let issuer_spki = match path.intermediate_certificates().next() {
        Some(issuer) => der::asn1::AnyRef::try_from(issuer.subject_public_key_info().as_ref())
            .map_err(|_| PathError::Webpki(webpki::Error::BadDer))?
            .value()
            .to_vec(),
        None => anchor.subject_public_key_info.to_vec(),
    };
    Ok(OnPath { intermediates: path.intermediate_certificates().count(), issuer_spki })
}

/// What a verified path is made of, as the checks need it.
struct OnPath {
    /// How many intermediates it uses.
    intermediates: usize,
    /// The leaf's issuer's SubjectPublicKeyInfo (contents).
    issuer_spki: Vec<u8>,
}

fn unix(now: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::verifier::INTEL_ROOT_CA_DER;

    /// 2025-07-01T00:00:00Z: inside the genuine TDX quote's collateral window.
    const NOW: u64 = 1_751_328_000;

    fn fixture(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dcap-qvl-samples");
        std::fs::read(dir.join(name)).expect("fixture")
    }

    fn collateral(name: &str) -> QuoteCollateralV3 {
        serde_json::from_slice(&fixture(name)).expect("collateral JSON")
    }

    fn genuine() -> VerifiedPck {
        let quote = Quote::parse(&fixture("tdx_quote")).expect("quote");
        verify_pck_chain(&quote, INTEL_ROOT_CA_DER, NOW).expect("Intel's chain")
    }

    #[test]
    fn the_key_comes_from_the_verified_certificate() {
        let pck = genuine();
        assert_eq!(pck.key().fmspc_hex(), "b0c06f000000");
        assert_eq!(pck.key().tee, Tee::Tdx);
        assert_eq!(pck.key().file_stem(), format!("b0c06f000000-{}-tdx", pck.key().ca_id()));
        // Against another root the same chain is untrusted.
        let quote = Quote::parse(&fixture("tdx_quote")).expect("quote");
        let other = crate::attest::verifier::SIMULATED_ROOT_CA_DER;
        assert!(matches!(verify_pck_chain(&quote, other, NOW), Err(PckChainError::Untrusted(_))));
    }

    #[test]
    fn genuine_collateral_passes_and_each_fault_is_typed_as_the_collateral_s() {
        let pck = genuine();
        check_collateral(&collateral("tdx_quote_collateral.json"), &pck, NOW).expect("genuine collateral");
        let fault = |c: &QuoteCollateralV3, now| match check_collateral(c, &pck, now) {
            Err(CollateralCheckError::Fault(f)) => f,
            other => panic!("expected a collateral fault, got {other:?}"),
        };
        // Expired (the PCK CRL's nextUpdate passes first).
        let late = fault(&collateral("tdx_quote_collateral.json"), 1_752_969_600);
        assert!(matches!(late, CollateralFault::SignerChain { .. } | CollateralFault::OutOfWindow { .. }), "{late}");
        // Another platform's (an SGX platform's) genuine collateral.
        let other = fault(&collateral("sgx_quote_collateral.json"), NOW);
        assert!(
            matches!(
                other,
                CollateralFault::WrongSubject { .. }
                    | CollateralFault::PckRevocation(_)
                    | CollateralFault::OutOfWindow { .. }
            ),
            "{other}"
        );
        // A QE identity signer chain swapped for the PCK CA's (a CA certificate as the signer).
        let mut c = collateral("tdx_quote_collateral.json");
        c.qe_identity_issuer_chain = c.pck_crl_issuer_chain.clone();
        assert!(matches!(fault(&c, NOW), CollateralFault::SignerChain { part: Part::QeIdentity, .. }));
        // CRLF line endings in an issuer chain are still the same chain.
        let mut c = collateral("tdx_quote_collateral.json");
        c.tcb_info_issuer_chain = c.tcb_info_issuer_chain.replace('\n', "\r\n");
        check_collateral(&c, &pck, NOW).expect("CRLF chain");
    }
}
