//! Simulated Intel DCAP PKI and TDX quote generator, for tests and demos on machines without TDX.
//!
//! Quotes and collateral made here are byte-for-byte in Intel's formats (TDX quote v4 with a
//! TD 1.0 body, QE report certification data, PEM PCK chain; TDX TCB info v3, TD_QE identity,
//! DER CRLs), so they go through the very same `dcap-qvl` verification code as genuine ones.
//! They chain to a root generated from a seed, whose names all say SIMULATED: `dcap-qvl`
//! accepts them only when that root is passed explicitly (`QuoteVerifier::new(root_ca_der)`),
//! never under Intel's built-in root.

use std::str::FromStr;
use std::time::Duration;

use der::asn1::{Any, OctetString, Uint};
use der::pem::LineEnding;
use der::referenced::OwnedToRef;
use der::{Encode, EncodePem, Tag};
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, Signature, SigningKey};
use sha2::{Digest, Sha256};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder, CrlBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CrlNumber, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

#[derive(Debug, thiserror::Error)]
pub enum SimPkiError {
    #[error("simulated PKI key: {0}")]
    Key(#[from] p256::ecdsa::Error),
    #[error("simulated PKI DER encoding: {0}")]
    Der(#[from] der::Error),
    #[error("simulated PKI public key: {0}")]
    Spki(#[from] x509_cert::spki::Error),
    #[error("simulated PKI certificate/CRL building: {0}")]
    Builder(#[from] x509_cert::builder::Error),
    #[error("simulated PKI JSON encoding: {0}")]
    Json(#[from] serde_json::Error),
    #[error("simulated PKI: {0}")]
    Other(&'static str),
}

/// Which TCB level of the simulated TCB info the quote's TEE TCB SVN meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimTcb {
    UpToDate,
    SwHardeningNeeded,
    ConfigurationNeeded,
    OutOfDate,
    Revoked,
}

impl SimTcb {
    const ALL: [SimTcb; 5] =
        [Self::UpToDate, Self::SwHardeningNeeded, Self::ConfigurationNeeded, Self::OutOfDate, Self::Revoked];

    /// Its platform TCB level: the TEE_TCB_SVN[2] (TDX late-microcode SVN) that meets it, the
    /// status as dcap-qvl spells it, the advisory, and the year of the level's tcbDate.
    fn level(self) -> (u8, &'static str, Option<&'static str>, u16) {
        match self {
            Self::UpToDate => (5, "UpToDate", None, 2025),
            Self::SwHardeningNeeded => (4, "SWHardeningNeeded", Some("INTEL-SA-SIM-0002"), 2024),
            Self::ConfigurationNeeded => (3, "ConfigurationNeeded", Some("INTEL-SA-SIM-0003"), 2024),
            Self::OutOfDate => (2, "OutOfDate", Some("INTEL-SA-SIM-0001"), 2023),
            Self::Revoked => (1, "Revoked", Some("INTEL-SA-SIM-0004"), 2018),
        }
    }
}

/// The TCB evaluation (`tcbEvaluationDataNumber`) of the simulated collateral: a dev deployment's
/// policy floor must not exceed it, or holders wait for fresher collateral forever.
pub const TCB_EVALUATION_DATA_NUMBER: u32 = 17;
// Spells "SIM" so the FMSPC cannot be taken for a real platform's.
const FMSPC: [u8; 6] = *b"SIM\0\0\0";
const PCE_ID: [u8; 2] = [0, 0];
const PCE_SVN: u8 = 11;
const CPU_SVN: [u8; 16] = [2, 2, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0];
// TEE_TCB_SVN[0] = TDX module ISVSVN, [1] = module major version: a non-zero version makes
// dcap-qvl judge [0..2] by the "TDX_01" module identity and the platform levels by [2..].
const TDX_MODULE_ISVSVN: u8 = 6;
const TDX_MODULE_VERSION: u8 = 1;
const QE_ISVSVN: u16 = 4;
const QE_ISVPRODID: u16 = 2;
// Intel's QE vendor ID: dcap-qvl refuses any other.
const INTEL_QE_VENDOR_ID: [u8; 16] =
    [0x93, 0x9A, 0x72, 0x33, 0xF7, 0x9C, 0x4C, 0xA9, 0x94, 0x0A, 0x0D, 0xB3, 0x95, 0x7F, 0x06, 0x07];
// Certificates are valid 2020-01-01 .. 2049-12-31 (last UTCTime second), so only the
// collateral's own dates decide freshness.
const CERT_NOT_BEFORE: u64 = 1_577_836_800;
const CERT_NOT_AFTER: u64 = 2_524_607_999;

/// Contents of the TD report in a simulated quote.
#[derive(Clone, Debug)]
pub struct SimQuoteParams {
    pub mr_td: [u8; 48],
    pub mr_config_id: [u8; 48],
    pub rtmr: [[u8; 48]; 4],
    pub report_data: [u8; 64],
    pub td_attributes: [u8; 8],
    pub xfam: [u8; 8],
    pub tcb: SimTcb,
}

impl SimQuoteParams {
    /// Dstack-like TD: SEPT_VE_DISABLE set (attribute bit 28, bytes `0000001000000000`), no
    /// debug, XFAM `e702060000000000`, UpToDate TCB, fixed recognisable measurements.
    pub fn new(report_data: [u8; 64]) -> Self {
        Self {
            mr_td: [0x5d; 48],
            mr_config_id: [0; 48],
            rtmr: [[0x01; 48], [0x02; 48], [0x03; 48], [0x04; 48]],
            report_data,
            td_attributes: [0, 0, 0, 0x10, 0, 0, 0, 0],
            xfam: [0xe7, 0x02, 0x06, 0, 0, 0, 0, 0],
            tcb: SimTcb::UpToDate,
        }
    }

    /// Sets the TD DEBUG attribute (bit 0), which verifiers must refuse.
    pub fn set_debug(&mut self) {
        self.td_attributes[0] |= 0x01;
    }
}

/// A deterministic simulated DCAP PKI: root CA, PCK processor CA, PCK leaf, TCB signing cert,
/// and the attestation key of a simulated TD quoting enclave.
pub struct SimulatedPki {
    seed: [u8; 32],
    root_key: SigningKey,
    pck_ca_key: SigningKey,
    pck_key: SigningKey,
    tcb_key: SigningKey,
    attestation_key: SigningKey,
    root: Certificate,
    root_der: Vec<u8>,
    pck_ca: Certificate,
    pck: Certificate,
    tcb_signer: Certificate,
    pck_revoked: bool,
}

impl SimulatedPki {
    pub fn from_seed(seed: [u8; 32]) -> Result<Self, SimPkiError> {
        let root_key = derive_key(&seed, "root-ca")?;
        let pck_ca_key = derive_key(&seed, "pck-processor-ca")?;
        let pck_key = derive_key(&seed, "pck-leaf")?;
        let tcb_key = derive_key(&seed, "tcb-signing")?;
        let attestation_key = derive_key(&seed, "qe-attestation-key")?;

        let root = issue(&seed, "Intel SGX Root CA", None, &root_key, Role::Ca(1))?;
        let by_root = Some((&root, &root_key));
        let pck_ca = issue(&seed, "Intel SGX PCK Processor CA", by_root, &pck_ca_key, Role::Ca(0))?;
        let pck_role = Role::Pck(sgx_extension(&seed)?);
        let by_pck_ca = Some((&pck_ca, &pck_ca_key));
        let pck = issue(&seed, "Intel SGX PCK Certificate", by_pck_ca, &pck_key, pck_role)?;
        let tcb_signer = issue(&seed, "Intel SGX TCB Signing", by_root, &tcb_key, Role::Signer)?;

        let root_der = root.to_der()?;
        Ok(Self {
            seed,
            root_key,
            pck_ca_key,
            pck_key,
            tcb_key,
            attestation_key,
            root,
            root_der,
            pck_ca,
            pck,
            tcb_signer,
            pck_revoked: false,
        })
    }

    pub fn root_ca_der(&self) -> Vec<u8> {
        self.root_der.clone()
    }

    /// Lists the PCK leaf certificate in the PCK CRL of later collateral.
    pub fn set_pck_revoked(&mut self, revoked: bool) {
        self.pck_revoked = revoked;
    }

    /// Collateral whose TCB info, QE identity and CRLs are valid from `issue_date` to
    /// `next_update` (unix seconds). The PCK chain is left to the quote, as for cert type 5.
    pub fn collateral(&self, issue_date: u64, next_update: u64) -> Result<dcap_qvl::QuoteCollateralV3, SimPkiError> {
        let (issued, next) = (rfc3339(issue_date)?, rfc3339(next_update)?);
        let tcb_info = serde_json::to_string(&self.tcb_info_json(&issued, &next))?;
        let qe_identity = serde_json::to_string(&qe_identity_json(&issued, &next, &self.qe_mrsigner()))?;
        let revoked = self.pck_revoked.then(|| self.pck.tbs_certificate().serial_number().clone());
        let signer_chain = pem_chain(&[&self.tcb_signer, &self.root])?;
        Ok(dcap_qvl::QuoteCollateralV3 {
            pck_crl_issuer_chain: pem_chain(&[&self.pck_ca, &self.root])?,
            root_ca_crl: make_crl(&self.root, &self.root_key, issue_date, next_update, None)?,
            pck_crl: make_crl(&self.pck_ca, &self.pck_ca_key, issue_date, next_update, revoked)?,
            tcb_info_issuer_chain: signer_chain.clone(),
            tcb_info_signature: raw_sig(&self.tcb_key, tcb_info.as_bytes()),
            tcb_info,
            qe_identity_issuer_chain: signer_chain,
            qe_identity_signature: raw_sig(&self.tcb_key, qe_identity.as_bytes()),
            qe_identity,
            pck_certificate_chain: None,
        })
    }

    /// A TDX quote v4 (TD 1.0 body) signed by the simulated attestation key, with QE report
    /// certification data (type 6) wrapping the PEM PCK chain (type 5).
    pub fn quote(&self, p: &SimQuoteParams) -> Result<Vec<u8>, SimPkiError> {
        let mut quote = Vec::with_capacity(5000);
        // Header: version 4, ECDSA-P256 key, TEE type TDX, 4 reserved bytes, QE vendor, user
        // data (QE ID + 4 zero bytes).
        quote.extend_from_slice(&4u16.to_le_bytes());
        quote.extend_from_slice(&2u16.to_le_bytes());
        quote.extend_from_slice(&0x81u32.to_le_bytes());
        quote.extend_from_slice(&[0; 4]);
        quote.extend_from_slice(&INTEL_QE_VENDOR_ID);
        quote.extend_from_slice(&derive_bytes::<16>(&self.seed, "qe-id"));
        quote.extend_from_slice(&[0; 4]);
        // TD report 1.0 (584 bytes). MRSIGNERSEAM and SEAMATTRIBUTES are zero as for Intel's
        // own module, which is what the TCB info expects.
        let mut tee_tcb_svn = [0u8; 16];
        tee_tcb_svn[..3].copy_from_slice(&[TDX_MODULE_ISVSVN, TDX_MODULE_VERSION, p.tcb.level().0]);
        for part in [&tee_tcb_svn[..], &derive_bytes::<48>(&self.seed, "mr-seam"), &[0; 48], &[0; 8]] {
            quote.extend_from_slice(part);
        }
        for part in [&p.td_attributes[..], &p.xfam, &p.mr_td, &p.mr_config_id, &[0; 48], &[0; 48]] {
            quote.extend_from_slice(part);
        }
        p.rtmr.iter().for_each(|r| quote.extend_from_slice(r));
        quote.extend_from_slice(&p.report_data);
        if quote.len() != 48 + 584 {
            return Err(SimPkiError::Other("TD report layout"));
        }

        let quote_sig = raw_sig(&self.attestation_key, &quote);
        let attestation_pub = self.attestation_key.verifying_key().to_sec1_point(false);
        let attestation_pub = attestation_pub.as_bytes().get(1..).ok_or(SimPkiError::Other("attestation key"))?;
        // Real QEs send 32 bytes of auth data; dcap-qvl requires exactly 32.
        let qe_auth_data: Vec<u8> = (0u8..32).collect();
        let mut qe_report_data = [0u8; 64];
        qe_report_data[..32]
            .copy_from_slice(&Sha256::new().chain_update(attestation_pub).chain_update(&qe_auth_data).finalize());
        let qe_report = self.qe_report(&qe_report_data);
        // Intel's quote generation ends the PEM chain with one NUL, as every genuine quote in
        // tests/fixtures does; so simulated quotes have a compact form (PROTOCOL.md §3.9) like genuine ones.
        let mut chain = pem_chain(&[&self.pck, &self.pck_ca, &self.root])?.into_bytes();
        chain.push(0);

        let mut qe_cert_data = qe_report.clone();
        qe_cert_data.extend_from_slice(&raw_sig(&self.pck_key, &qe_report));
        qe_cert_data.extend_from_slice(
            &u16::try_from(qe_auth_data.len()).map_err(|_| SimPkiError::Other("auth data length"))?.to_le_bytes(),
        );
        qe_cert_data.extend_from_slice(&qe_auth_data);
        push_cert_data(&mut qe_cert_data, 5, &chain)?;

        let mut auth_data = quote_sig;
        auth_data.extend_from_slice(attestation_pub);
        push_cert_data(&mut auth_data, 6, &qe_cert_data)?;
        quote.extend_from_slice(&len_u32(&auth_data)?.to_le_bytes());
        quote.extend_from_slice(&auth_data);
        Ok(quote)
    }

    fn qe_mrsigner(&self) -> [u8; 32] {
        derive_bytes::<32>(&self.seed, "qe-mrsigner")
    }

    /// The TD quoting enclave's 384-byte SGX report, as the PCE would sign it.
    fn qe_report(&self, report_data: &[u8; 64]) -> Vec<u8> {
        let mut r = Vec::with_capacity(384);
        r.extend_from_slice(&CPU_SVN);
        r.extend_from_slice(&0u32.to_le_bytes()); // MISCSELECT
        r.extend_from_slice(&[0; 28]);
        let mut attributes = [0u8; 16];
        attributes[0] = 0x11; // INIT | MODE64BIT, not DEBUG
        r.extend_from_slice(&attributes);
        r.extend_from_slice(&derive_bytes::<32>(&self.seed, "qe-mrenclave"));
        r.extend_from_slice(&[0; 32]);
        r.extend_from_slice(&self.qe_mrsigner());
        r.extend_from_slice(&[0; 96]);
        r.extend_from_slice(&QE_ISVPRODID.to_le_bytes());
        r.extend_from_slice(&QE_ISVSVN.to_le_bytes());
        r.extend_from_slice(&[0; 60]);
        r.extend_from_slice(report_data);
        r
    }

    fn tcb_info_json(&self, issued: &str, next: &str) -> serde_json::Value {
        let svns = |v: &[u8]| v.iter().map(|svn| serde_json::json!({ "svn": svn })).collect::<Vec<_>>();
        let levels: Vec<_> = SimTcb::ALL
            .iter()
            .map(|tcb| {
                let (svn, status, advisory, year) = tcb.level();
                let date = format!("{year}-01-01T00:00:00Z");
                let mut tdx = [0u8; 16];
                tdx[..3].copy_from_slice(&[TDX_MODULE_ISVSVN, TDX_MODULE_VERSION, svn]);
                let mut level = serde_json::json!({
                    "tcb": { "sgxtcbcomponents": svns(&CPU_SVN), "pcesvn": PCE_SVN, "tdxtcbcomponents": svns(&tdx) },
                    "tcbDate": date, "tcbStatus": status,
                });
                if let (Some(a), Some(obj)) = (advisory, level.as_object_mut()) {
                    obj.insert("advisoryIDs".into(), serde_json::json!([a]));
                }
                level
            })
            .collect();
        let zero_signer = hex::encode_upper([0u8; 48]);
        serde_json::json!({
            "id": "TDX", "version": 3, "issueDate": issued, "nextUpdate": next,
            "fmspc": hex::encode_upper(FMSPC), "pceId": hex::encode_upper(PCE_ID),
            "tcbType": 0, "tcbEvaluationDataNumber": TCB_EVALUATION_DATA_NUMBER,
            "tdxModule": { "mrsigner": zero_signer, "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF" },
            "tdxModuleIdentities": [{
                "id": format!("TDX_{TDX_MODULE_VERSION:02X}"), "mrsigner": zero_signer,
                "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF",
                "tcbLevels": [
                    { "tcb": { "isvsvn": TDX_MODULE_ISVSVN }, "tcbDate": "2025-01-08T00:00:00Z", "tcbStatus": "UpToDate" },
                    { "tcb": { "isvsvn": 2 }, "tcbDate": "2023-08-09T00:00:00Z", "tcbStatus": "OutOfDate" },
                ],
            }],
            "tcbLevels": levels,
        })
    }
}

fn qe_identity_json(issued: &str, next: &str, mrsigner: &[u8; 32]) -> serde_json::Value {
    serde_json::json!({
        "id": "TD_QE", "version": 2, "issueDate": issued, "nextUpdate": next,
        "tcbEvaluationDataNumber": TCB_EVALUATION_DATA_NUMBER, "miscselect": "00000000", "miscselectMask": "FFFFFFFF",
        "attributes": "11000000000000000000000000000000", "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
        "mrsigner": hex::encode_upper(mrsigner), "isvprodid": QE_ISVPRODID,
        "tcbLevels": [{ "tcb": { "isvsvn": QE_ISVSVN }, "tcbDate": "2024-03-13T00:00:00Z", "tcbStatus": "UpToDate" }],
    })
}

fn derive_bytes<const N: usize>(seed: &[u8; 32], label: &str) -> [u8; N] {
    let mut out = [0u8; N];
    // N is at most 48 here, far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(b"replicatoor simulated dcap pki v1"), seed).expand(label.as_bytes(), &mut out);
    out
}

fn derive_key(seed: &[u8; 32], label: &str) -> Result<SigningKey, SimPkiError> {
    // A derived scalar is zero or >= the group order with probability ~2^-32; retry then.
    for attempt in 0..8 {
        if let Ok(key) = SigningKey::from_slice(&derive_bytes::<32>(seed, &format!("key/{label}/{attempt}"))) {
            return Ok(key);
        }
    }
    Err(SimPkiError::Other("no valid P-256 scalar derived"))
}

/// Raw `r || s` ECDSA-P256-SHA256 signature, as DCAP structures carry them (RFC 6979, so
/// deterministic).
fn raw_sig(key: &SigningKey, msg: &[u8]) -> Vec<u8> {
    let sig: Signature = key.sign(msg);
    sig.to_bytes().to_vec()
}

fn push_cert_data(out: &mut Vec<u8>, cert_type: u16, body: &[u8]) -> Result<(), SimPkiError> {
    out.extend_from_slice(&cert_type.to_le_bytes());
    out.extend_from_slice(&len_u32(body)?.to_le_bytes());
    out.extend_from_slice(body);
    Ok(())
}

fn len_u32(data: &[u8]) -> Result<u32, SimPkiError> {
    u32::try_from(data.len()).map_err(|_| SimPkiError::Other("length exceeds u32"))
}

/// Collateral dates in the form Intel writes them (and the verifier parses).
fn rfc3339(unix: u64) -> Result<String, SimPkiError> {
    replicatoor_core::attest::collateral::rfc3339_utc(unix).ok_or(SimPkiError::Other("a date past year 9999"))
}

fn x509_time(unix: u64) -> Result<Time, SimPkiError> {
    Ok(Time::from(der::DateTime::from_unix_duration(Duration::from_secs(unix))?))
}

fn pem_chain(certs: &[&Certificate]) -> Result<String, SimPkiError> {
    let pems = certs.iter().map(|c| c.to_pem(LineEnding::LF)).collect::<Result<Vec<_>, _>>()?;
    Ok(pems.concat())
}

fn make_crl(
    issuer: &Certificate,
    key: &SigningKey,
    this_update: u64,
    next_update: u64,
    revoked: Option<SerialNumber>,
) -> Result<Vec<u8>, SimPkiError> {
    let mut builder = CrlBuilder::new_with_this_update(issuer, CrlNumber(Uint::new(&[1])?), x509_time(this_update)?)?
        .with_next_update(Some(x509_time(next_update)?));
    if let Some(serial_number) = revoked {
        let revocation_date = x509_time(this_update)?;
        let entry = RevokedCert { serial_number, revocation_date, crl_entry_extensions: None };
        builder = builder.with_certificates(std::iter::once(entry));
    }
    Ok(builder.build::<_, DerSignature>(key)?.to_der()?)
}

/// Intel's SGX extension (OID 1.2.840.113741.1.13.1) of a processor-CA PCK certificate:
/// PPID, TCB (16 components, PCESVN, CPUSVN), PCE-ID, FMSPC, SGX type.
fn sgx_extension(seed: &[u8; 32]) -> Result<Extension, SimPkiError> {
    const SGX: &str = "1.2.840.113741.1.13.1";
    let entry = |arc: &str, value: Vec<u8>| -> Result<Vec<u8>, SimPkiError> {
        let oid = der::asn1::ObjectIdentifier::new(&format!("{SGX}.{arc}")).map_err(der::Error::from)?;
        seq(vec![oid.to_der()?, value])
    };
    let octets = |b: &[u8]| -> Result<Vec<u8>, SimPkiError> { Ok(OctetString::new(b)?.to_der()?) };
    let mut tcb = CPU_SVN
        .iter()
        .enumerate()
        .map(|(i, svn)| entry(&format!("2.{}", i + 1), u32::from(*svn).to_der()?))
        .collect::<Result<Vec<_>, _>>()?;
    tcb.push(entry("2.17", u32::from(PCE_SVN).to_der()?)?);
    tcb.push(entry("2.18", octets(&CPU_SVN)?)?);
    let value = seq(vec![
        entry("1", octets(&derive_bytes::<16>(seed, "ppid"))?)?,
        entry("2", seq(tcb)?)?,
        entry("3", octets(&PCE_ID)?)?,
        entry("4", octets(&FMSPC)?)?,
        entry("5", Any::new(Tag::Enumerated, [0u8])?.to_der()?)?, // SGX type: Standard
    ])?;
    Ok(Extension {
        extn_id: der::asn1::ObjectIdentifier::new(SGX).map_err(der::Error::from)?,
        critical: false,
        extn_value: OctetString::new(value)?,
    })
}

fn seq(items: Vec<Vec<u8>>) -> Result<Vec<u8>, SimPkiError> {
    Ok(Any::new(Tag::Sequence, items.concat())?.to_der()?)
}

enum Role {
    Ca(u8),
    Signer,
    Pck(Extension),
}

/// A builder profile that takes names and extensions as given instead of applying CABF rules.
struct SimProfile {
    subject: Name,
    issuer: Name,
    extensions: Vec<Extension>,
}

impl BuilderProfile for SimProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(self.extensions.clone())
    }
}

/// Issues a certificate for `subject_key`, signed by `issuer` (cert and key) or self-signed, valid
/// 2020-01-01 .. 2049-12-31.
fn issue(
    seed: &[u8; 32],
    common_name: &str,
    issuer: Option<(&Certificate, &SigningKey)>,
    subject_key: &SigningKey,
    role: Role,
) -> Result<Certificate, SimPkiError> {
    issue_valid(seed, common_name, issuer, subject_key, role, (CERT_NOT_BEFORE, CERT_NOT_AFTER))
}

/// [`issue`], valid from `validity.0` to `validity.1` (unix seconds).
fn issue_valid(
    seed: &[u8; 32],
    common_name: &str,
    issuer: Option<(&Certificate, &SigningKey)>,
    subject_key: &SigningKey,
    role: Role,
    validity: (u64, u64),
) -> Result<Certificate, SimPkiError> {
    let subject = Name::from_str(&format!("CN=SIMULATED {common_name},O=SIMULATED DCAP PKI (not Intel)"))?;
    let spki = SubjectPublicKeyInfoOwned::from_key(subject_key.verifying_key())?;
    let ski = SubjectKeyIdentifier::try_from(spki.owned_to_ref())?;
    let mut exts = vec![ski.to_extension(&subject, &[])?];
    let (usage, path_len) = match &role {
        Role::Ca(path_len) => (KeyUsages::KeyCertSign | KeyUsages::CRLSign, Some(*path_len)),
        Role::Signer | Role::Pck(_) => (KeyUsages::DigitalSignature | KeyUsages::NonRepudiation, None),
    };
    let basic = BasicConstraints { ca: path_len.is_some(), path_len_constraint: path_len };
    exts.push(KeyUsage(usage).to_extension(&subject, &[])?);
    exts.push(basic.to_extension(&subject, &[])?);
    // CA certificates carry no AKI: x509-cert's CrlBuilder copies an issuer's AKI into its CRLs,
    // which would name the wrong key; without one it derives the right one from the CA's key.
    if let (Some((issuer_cert, _)), None) = (issuer, path_len) {
        let issuer_spki = issuer_cert.tbs_certificate().subject_public_key_info();
        let issuer_ski = SubjectKeyIdentifier::try_from(issuer_spki.owned_to_ref())?;
        let aki = AuthorityKeyIdentifier { key_identifier: Some(issuer_ski.0), ..Default::default() };
        exts.push(aki.to_extension(&subject, &[])?);
    }
    if let Role::Pck(ext) = role {
        exts.push(ext);
    }
    let mut serial = derive_bytes::<16>(seed, &format!("serial/{subject}"));
    serial[0] = (serial[0] & 0x7f) | 0x01; // positive and without a leading zero byte
    let (issuer_name, issuer_key) = match issuer {
        Some((cert, key)) => (cert.tbs_certificate().subject().clone(), key),
        None => (subject.clone(), subject_key),
    };
    let profile = SimProfile { subject, issuer: issuer_name, extensions: exts };
    let validity = Validity::new(x509_time(validity.0)?, x509_time(validity.1)?);
    let builder = CertificateBuilder::new(profile, SerialNumber::new(&serial)?, validity, spki)?;
    Ok(builder.build::<_, DerSignature>(issuer_key)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcap_qvl::verify::QuoteVerifier;
    use dcap_qvl::QuoteCollateralV3;

    const NOW: u64 = 1_750_000_000; // 2025-06-15T15:06:40Z
    const ISSUED: u64 = NOW - 86_400;
    const NEXT: u64 = NOW + 30 * 86_400;

    fn pki() -> SimulatedPki {
        SimulatedPki::from_seed([7; 32]).expect("pki")
    }

    fn verify(pki: &SimulatedPki, quote: &[u8], now: u64) -> Result<dcap_qvl::verify::VerifiedReport, String> {
        let collateral = pki.collateral(ISSUED, NEXT).expect("collateral");
        QuoteVerifier::new(pki.root_ca_der()).verify(quote, &collateral, now).map_err(|e| format!("{e:#}"))
    }

    fn params(tcb: SimTcb) -> SimQuoteParams {
        let mut p = SimQuoteParams::new([0xab; 64]);
        p.mr_td = [0x11; 48];
        p.mr_config_id = [0x22; 48];
        p.rtmr = [[0x31; 48], [0x32; 48], [0x33; 48], [0x34; 48]];
        p.tcb = tcb;
        p
    }

    #[test]
    fn up_to_date_quote_verifies_with_its_measurements() {
        let pki = pki();
        let p = params(SimTcb::UpToDate);
        let quote = pki.quote(&p).expect("quote");
        let report = verify(&pki, &quote, NOW).expect("verifies");
        assert_eq!(report.status, "UpToDate");
        assert!(report.advisory_ids.is_empty());
        let td = report.report.as_td10().expect("TD 1.0 report");
        assert_eq!(td.mr_td, p.mr_td);
        assert_eq!(td.mr_config_id, p.mr_config_id);
        assert_eq!([td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3], p.rtmr);
        assert_eq!(td.report_data, p.report_data);
        assert_eq!(td.td_attributes, p.td_attributes);
        // The claims path (CRL numbers, time window, strict policy) accepts it too.
        let collateral = pki.collateral(ISSUED, NEXT).expect("collateral");
        let claims = QuoteVerifier::new(pki.root_ca_der())
            .verify_with_policy(&quote, collateral, NOW, &dcap_qvl::QuotePolicy::strict(NOW))
            .expect("strict policy");
        assert_eq!(claims.platform.pck.fmspc, FMSPC);
        assert_eq!(claims.platform.pck.cpu_svn, CPU_SVN);
        assert_eq!(claims.platform.pck.pce_svn, u16::from(PCE_SVN));
        assert_eq!(claims.earliest_expiration_date, NEXT);
    }

    #[test]
    fn each_tcb_level_gives_its_status() {
        let pki = pki();
        for (tcb, status, advisory) in [
            (SimTcb::SwHardeningNeeded, "SWHardeningNeeded", "INTEL-SA-SIM-0002"),
            (SimTcb::ConfigurationNeeded, "ConfigurationNeeded", "INTEL-SA-SIM-0003"),
            (SimTcb::OutOfDate, "OutOfDate", "INTEL-SA-SIM-0001"),
        ] {
            let report = verify(&pki, &pki.quote(&params(tcb)).expect("quote"), NOW).expect("verifies");
            assert_eq!(report.status, status);
            assert_eq!(report.advisory_ids, vec![advisory.to_string()]);
        }
        let err = verify(&pki, &pki.quote(&params(SimTcb::Revoked)).expect("quote"), NOW).expect_err("revoked");
        assert!(err.contains("Revoked"), "{err:#}");
    }

    #[test]
    fn debug_td_is_refused() {
        let pki = pki();
        let mut p = params(SimTcb::UpToDate);
        p.set_debug();
        let err = verify(&pki, &pki.quote(&p).expect("quote"), NOW).expect_err("debug TD");
        assert!(err.contains("Debug"), "{err:#}");
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let pki = pki();
        let quote = pki.quote(&params(SimTcb::UpToDate)).expect("quote");
        let pem_start = quote.windows(5).position(|w| w == b"-----").expect("PEM chain");
        // A byte of MRTD in the body, of the quote signature, and of the PCK leaf's base64.
        for (offset, expected) in [
            (48 + 16 + 48 + 48 + 24 + 3, "signature is invalid"),
            (48 + 584 + 4 + 10, "signature is invalid"),
            (pem_start + 400, "certificate"),
        ] {
            let mut bad = quote.clone();
            bad[offset] ^= 0x01;
            let err = verify(&pki, &bad, NOW).expect_err("tampered quote");
            assert!(err.contains(expected), "flip at {offset}: {err}");
        }
    }

    #[test]
    fn expired_collateral_is_refused() {
        let pki = pki();
        let quote = pki.quote(&params(SimTcb::UpToDate)).expect("quote");
        let err = verify(&pki, &quote, NEXT + 1).expect_err("expired");
        assert!(err.to_lowercase().contains("expired"), "{err}");
        let err = verify(&pki, &quote, ISSUED - 1).expect_err("not yet issued");
        assert!(err.contains("future"), "{err}");
    }

    #[test]
    fn intel_root_does_not_trust_the_simulated_root() {
        let pki = pki();
        let quote = pki.quote(&params(SimTcb::UpToDate)).expect("quote");
        let collateral = pki.collateral(ISSUED, NEXT).expect("collateral");
        assert!(dcap_qvl::verify::verify(&quote, &collateral, NOW).is_err());
        // Nor does another seed's simulated root.
        let other = SimulatedPki::from_seed([8; 32]).expect("pki");
        assert!(QuoteVerifier::new(other.root_ca_der()).verify(&quote, &collateral, NOW).is_err());
    }

    #[test]
    fn revoked_pck_certificate_is_refused() {
        let mut pki = pki();
        let quote = pki.quote(&params(SimTcb::UpToDate)).expect("quote");
        pki.set_pck_revoked(true);
        let err = verify(&pki, &quote, NOW).expect_err("revoked PCK");
        assert!(err.contains("Revoked"), "{err:#}");
    }

    #[test]
    fn same_seed_gives_same_pki_and_collateral() {
        let (a, b) = (pki(), pki());
        assert_eq!(a.root_ca_der(), b.root_ca_der());
        assert_eq!(a.collateral(ISSUED, NEXT).expect("a"), b.collateral(ISSUED, NEXT).expect("b"));
        let p = params(SimTcb::UpToDate);
        assert_eq!(a.quote(&p).expect("a"), b.quote(&p).expect("b"));
        assert_ne!(a.root_ca_der(), SimulatedPki::from_seed([8; 32]).expect("pki").root_ca_der());
    }

    /// Test-only ways to make faulty collateral and PCK certificates from a simulated PKI.
    impl SimulatedPki {
        /// The TCB signing certificate's chain, as collateral carries it.
        fn signer_chain(&self) -> String {
            pem_chain(&[&self.tcb_signer, &self.root]).expect("signer chain")
        }

        /// Collateral of [`ISSUED`]..[`NEXT`] whose TCB info is edited by `edit`, then signed by
        /// `signer`'s TCB signing key and carries `signer`'s chain (`signer` = `self`: a correct
        /// re-signing).
        fn with_tcb_info(&self, signer: &SimulatedPki, edit: impl FnOnce(&mut serde_json::Value)) -> QuoteCollateralV3 {
            let mut c = self.collateral(ISSUED, NEXT).expect("collateral");
            c.tcb_info = edited_json(&c.tcb_info, edit);
            c.tcb_info_signature = raw_sig(&signer.tcb_key, c.tcb_info.as_bytes());
            c.tcb_info_issuer_chain = signer.signer_chain();
            c
        }

        /// [`SimulatedPki::with_tcb_info`] for the QE identity.
        fn with_qe_identity(
            &self,
            signer: &SimulatedPki,
            edit: impl FnOnce(&mut serde_json::Value),
        ) -> QuoteCollateralV3 {
            let mut c = self.collateral(ISSUED, NEXT).expect("collateral");
            c.qe_identity = edited_json(&c.qe_identity, edit);
            c.qe_identity_signature = raw_sig(&signer.tcb_key, c.qe_identity.as_bytes());
            c.qe_identity_issuer_chain = signer.signer_chain();
            c
        }

        /// Collateral of [`ISSUED`]..[`NEXT`] whose root CA CRL (`root_ca: true`) or PCK CRL is
        /// replaced by one in this PKI's issuer name, signed by `key`, valid `this_update`..`next_update`,
        /// revoking `revoked`.
        fn with_crl(
            &self,
            root_ca: bool,
            key: &SigningKey,
            (this_update, next_update): (u64, u64),
            revoked: Option<SerialNumber>,
        ) -> QuoteCollateralV3 {
            let mut c = self.collateral(ISSUED, NEXT).expect("collateral");
            let issuer = if root_ca { &self.root } else { &self.pck_ca };
            let crl = make_crl(issuer, key, this_update, next_update, revoked).expect("CRL");
            *(if root_ca { &mut c.root_ca_crl } else { &mut c.pck_crl }) = crl;
            c
        }

        /// This PKI with its PCK leaf re-issued: by the root directly instead of the PCK CA
        /// (`by_root`), without Intel's SGX extension (`!with_sgx_extension`), valid `validity` (unix
        /// seconds) only.
        fn with_pck_leaf(mut self, by_root: bool, with_sgx_extension: bool, validity: (u64, u64)) -> Self {
            let role = match with_sgx_extension {
                true => Role::Pck(sgx_extension(&self.seed).expect("SGX extension")),
                false => Role::Signer,
            };
            let issuer = match by_root {
                true => (&self.root, &self.root_key),
                false => (&self.pck_ca, &self.pck_ca_key),
            };
            self.pck =
                issue_valid(&self.seed, "Intel SGX PCK Certificate", Some(issuer), &self.pck_key, role, validity)
                    .expect("PCK leaf");
            self
        }
    }

    /// `json` parsed, edited and written again (serde_json writes the simulated collateral's JSON
    /// from a `Value` too, so an empty edit gives back the same bytes).
    fn edited_json(json: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut value: serde_json::Value = serde_json::from_str(json).expect("collateral JSON");
        edit(&mut value);
        serde_json::to_string(&value).expect("JSON")
    }

    /// `json` with `from` replaced by `to` once (a change that keeps it parsing), not re-signed.
    fn tampered(json: &str, from: &str, to: &str) -> String {
        assert!(json.contains(from), "{from} in {json}");
        json.replacen(from, to, 1)
    }

    /// A quote, the collateral and the root handed to dcap-qvl, and a word its refusal must contain.
    struct Case {
        fault: &'static str,
        quote: Vec<u8>,
        collateral: QuoteCollateralV3,
        root: Vec<u8>,
        refusal: &'static str,
    }

    /// dcap-qvl alone, as the kernel calls it (`Verifier::verify_prepared`): the root passed in,
    /// debug TDs left to the policy, the quote's own PCK chain (none from the collateral).
    fn dcap_qvl_alone(case: &Case) -> Result<dcap_qvl::verify::VerifiedReport, String> {
        let mut collateral = case.collateral.clone();
        collateral.pck_certificate_chain = None;
        QuoteVerifier::new(case.root.clone())
            .allow_debug(true)
            .verify(&case.quote, &collateral, NOW)
            .map_err(|e| format!("{e:#}"))
    }

    /// Every collateral/PCK fault `replicatoor_core::attest::pck` checks for (`verify_read_chain`,
    /// `check_collateral_itself`, `check_pck_revocation`, `check_window`, `check_signed`), each
    /// alone on otherwise sound collateral.
    fn collateral_faults() -> Vec<Case> {
        let pki = pki();
        // Another seed's PKI: the same names, other keys (so webpki finds this root by name, and its
        // signature does not verify).
        let other = SimulatedPki::from_seed([8; 32]).expect("other pki");
        let quote = pki.quote(&params(SimTcb::UpToDate)).expect("quote");
        let root = pki.root_ca_der();
        let good = || pki.collateral(ISSUED, NEXT).expect("collateral");
        let date = |t: u64| serde_json::Value::String(rfc3339(t).expect("date"));
        let case =
            |fault, collateral, refusal| Case { fault, quote: quote.clone(), collateral, root: root.clone(), refusal };
        let mut cases = vec![
            // TCB info.
            case(
                "TCB info not yet valid (issueDate in the future)",
                pki.with_tcb_info(&pki, |j| j["issueDate"] = date(NOW + 1)),
                "TCBInfo issue date is in the future",
            ),
            case(
                "TCB info expired (nextUpdate passed)",
                pki.with_tcb_info(&pki, |j| j["nextUpdate"] = date(NOW - 1)),
                "TCBInfo expired",
            ),
            case(
                "TCB info signature does not match (a byte of the JSON changed, not re-signed)",
                {
                    let mut c = good();
                    c.tcb_info =
                        tampered(&c.tcb_info, "\"tcbEvaluationDataNumber\":17", "\"tcbEvaluationDataNumber\":18");
                    c
                },
                "Signature is invalid for tcb_info",
            ),
            case(
                "TCB info re-signed by a key whose certificate does not chain to the root",
                pki.with_tcb_info(&other, |_| {}),
                "InvalidSignatureForPublicKey",
            ),
            case(
                "TCB info re-signed by a foreign key, the genuine signer chain kept",
                {
                    let mut c = good();
                    c.tcb_info_signature = raw_sig(&other.tcb_key, c.tcb_info.as_bytes());
                    c
                },
                "Signature is invalid for tcb_info",
            ),
            case(
                "TCB info signed by a certificate the root did not issue directly (the PCK leaf)",
                {
                    let mut c = good();
                    c.tcb_info_signature = raw_sig(&pki.pck_key, c.tcb_info.as_bytes());
                    c.tcb_info_issuer_chain = pem_chain(&[&pki.pck, &pki.pck_ca, &pki.root]).expect("chain");
                    c
                },
                "TCB Info signer must be issued directly by the root CA",
            ),
            case(
                "TCB info re-signed correctly but for another FMSPC",
                pki.with_tcb_info(&pki, |j| j["fmspc"] = "00906ED50000".into()),
                "Fmspc mismatch",
            ),
            case(
                "TCB info re-signed correctly but for SGX (\"id\": \"SGX\")",
                pki.with_tcb_info(&pki, |j| j["id"] = "SGX".into()),
                "non-TDX TCB info",
            ),
            case(
                "TCB info re-signed correctly, its nextUpdate 1 h ahead at +02:00, so past in UTC",
                pki.with_tcb_info(&pki, |j| {
                    j["nextUpdate"] = rfc3339(NOW + 3600).expect("date").replace('Z', "+02:00").into();
                }),
                "TCBInfo expired",
            ),
            case(
                "TCB info re-signed correctly but not parsing (no fmspc)",
                pki.with_tcb_info(&pki, |j| {
                    j.as_object_mut().expect("object").remove("fmspc");
                }),
                "Failed to decode TcbInfo",
            ),
            // QE identity.
            case(
                "QE identity not yet valid (issueDate in the future)",
                pki.with_qe_identity(&pki, |j| j["issueDate"] = date(NOW + 1)),
                "QE Identity issue date is in the future",
            ),
            case(
                "QE identity expired (nextUpdate passed)",
                pki.with_qe_identity(&pki, |j| j["nextUpdate"] = date(NOW - 1)),
                "QE Identity expired",
            ),
            case(
                "QE identity signature does not match (a byte of the JSON changed, not re-signed)",
                {
                    let mut c = good();
                    c.qe_identity =
                        tampered(&c.qe_identity, "\"tcbEvaluationDataNumber\":17", "\"tcbEvaluationDataNumber\":18");
                    c
                },
                "Signature is invalid for qe_identity",
            ),
            case(
                "QE identity re-signed by a key whose certificate does not chain to the root",
                pki.with_qe_identity(&other, |_| {}),
                "InvalidSignatureForPublicKey",
            ),
            case(
                "QE identity signer chain swapped for the PCK CA's (a CA certificate as the signer)",
                {
                    let mut c = good();
                    c.qe_identity_issuer_chain = c.pck_crl_issuer_chain.clone();
                    c
                },
                "CaUsedAsEndEntity",
            ),
            case(
                "QE identity re-signed correctly but with id \"QE\" (SGX's) for a TDX quote",
                pki.with_qe_identity(&pki, |j| j["id"] = "QE".into()),
                "Unsupported QE Identity id/version",
            ),
            case(
                "QE identity re-signed correctly but with the unsupported version 1",
                pki.with_qe_identity(&pki, |j| j["version"] = 1.into()),
                "Unsupported QE Identity id/version",
            ),
            case(
                "QE identity re-signed correctly but with the unsupported version 4",
                pki.with_qe_identity(&pki, |j| j["version"] = 4.into()),
                "Unsupported QE Identity id/version",
            ),
            // CRLs.
            case(
                "root CA CRL signed by a key that is not the root's",
                pki.with_crl(true, &other.root_key, (ISSUED, NEXT), None),
                "Failed to parse root CA CRL",
            ),
            case(
                "root CA CRL whose nextUpdate has passed",
                pki.with_crl(true, &pki.root_key, (ISSUED, NOW - 1), None),
                "CrlExpired",
            ),
            case(
                "root CA CRL revoking the root",
                pki.with_crl(
                    true,
                    &pki.root_key,
                    (ISSUED, NEXT),
                    Some(pki.root.tbs_certificate().serial_number().clone()),
                ),
                "CertRevoked",
            ),
            case(
                "root CA CRL revoking the TCB signing certificate",
                pki.with_crl(
                    true,
                    &pki.root_key,
                    (ISSUED, NEXT),
                    Some(pki.tcb_signer.tbs_certificate().serial_number().clone()),
                ),
                "CertRevoked",
            ),
            case(
                "root CA CRL revoking the PCK CA",
                pki.with_crl(
                    true,
                    &pki.root_key,
                    (ISSUED, NEXT),
                    Some(pki.pck_ca.tbs_certificate().serial_number().clone()),
                ),
                "CertRevoked",
            ),
            case(
                "PCK CRL in the PCK CA's name signed by another key",
                pki.with_crl(false, &other.pck_ca_key, (ISSUED, NEXT), None),
                "InvalidCrlSignatureForPublicKey",
            ),
            case(
                "PCK CRL of another CA (the root CA CRL in its place)",
                {
                    let mut c = good();
                    c.pck_crl = c.root_ca_crl.clone();
                    c
                },
                "UnknownRevocationStatus",
            ),
            case(
                "PCK CRL whose nextUpdate has passed",
                pki.with_crl(false, &pki.pck_ca_key, (ISSUED, NOW - 1), None),
                "CrlExpired",
            ),
            case(
                "PCK certificate revoked by the PCK CRL",
                pki.with_crl(
                    false,
                    &pki.pck_ca_key,
                    (ISSUED, NEXT),
                    Some(pki.pck.tbs_certificate().serial_number().clone()),
                ),
                "CertRevoked",
            ),
            // The root passed in.
            case(
                "another root passed in than the collateral's and the PCK chain's",
                good(),
                "Failed to parse root CA CRL",
            ),
        ];
        if let Some(last) = cases.last_mut() {
            last.root = other.root_ca_der();
        }
        // PCK chain.
        let p = params(SimTcb::UpToDate);
        let pck_case = |fault, quote, refusal| Case { fault, quote, collateral: good(), root: root.clone(), refusal };
        cases.push(pck_case(
            "PCK chain leading to another root than the one passed in",
            other.quote(&p).expect("other quote"),
            "InvalidSignatureForPublicKey",
        ));
        cases.push(pck_case(
            "PCK leaf expired",
            self::pki().with_pck_leaf(false, true, (CERT_NOT_BEFORE, NOW - 1)).quote(&p).expect("quote"),
            "CertExpired",
        ));
        cases.push(pck_case(
            "PCK leaf not yet valid",
            self::pki().with_pck_leaf(false, true, (NOW + 1, CERT_NOT_AFTER)).quote(&p).expect("quote"),
            "CertNotValidYet",
        ));
        cases.push(pck_case(
            "PCK leaf without Intel's SGX extension (no FMSPC)",
            self::pki().with_pck_leaf(false, false, (CERT_NOT_BEFORE, CERT_NOT_AFTER)).quote(&p).expect("quote"),
            "Intel extension",
        ));
        cases
    }

    #[test]
    fn dcap_qvl_alone_refuses_every_collateral_fault_the_prechecks_refuse() {
        // Positive control: the same call accepts the unmodified collateral and quote.
        let pki = pki();
        let control = Case {
            fault: "none",
            quote: pki.quote(&params(SimTcb::UpToDate)).expect("quote"),
            collateral: pki.collateral(ISSUED, NEXT).expect("collateral"),
            root: pki.root_ca_der(),
            refusal: "",
        };
        let report = dcap_qvl_alone(&control).expect("the unmodified collateral verifies");
        assert_eq!(report.status, "UpToDate");

        for case in collateral_faults() {
            match dcap_qvl_alone(&case) {
                Ok(report) => panic!("dcap-qvl ACCEPTS {}: status {}", case.fault, report.status),
                Err(e) => assert!(e.contains(case.refusal), "{}: refused, but not for it: {e}", case.fault),
            }
        }
    }

    /// What `replicatoor_core::attest::pck` says of a case: the PCK chain against the root, then
    /// the collateral against that chain (as `Verifier::collateral_for_quote` runs them).
    fn prechecks(case: &Case) -> Result<(), String> {
        use replicatoor_core::attest::pck;
        let quote = dcap_qvl::quote::Quote::parse(&case.quote).map_err(|e| format!("quote: {e:#}"))?;
        let chain = pck::verify_pck_chain(&quote, &case.root, NOW).map_err(|e| e.to_string())?;
        pck::check_collateral(&case.collateral, &chain, NOW).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_prechecks_refuse_each_of_these_faults_too() {
        // So each case above is a fault the pre-checks refuse (as a retry or a refusal), and the
        // positive control passes them.
        let pki = pki();
        let control = Case {
            fault: "none",
            quote: pki.quote(&params(SimTcb::UpToDate)).expect("quote"),
            collateral: pki.collateral(ISSUED, NEXT).expect("collateral"),
            root: pki.root_ca_der(),
            refusal: "",
        };
        prechecks(&control).expect("the pre-checks pass the unmodified collateral");
        for case in collateral_faults() {
            assert!(prechecks(&case).is_err(), "the pre-checks pass {}", case.fault);
        }
    }

    /// Faults the pre-checks refuse and dcap-qvl alone accepts, with the pre-checks' verdict.
    fn accepted_by_dcap_qvl_alone(cases: Vec<Case>) -> Vec<String> {
        cases
            .iter()
            .filter_map(|case| {
                let precheck = prechecks(case).expect_err("the pre-checks refuse it");
                let report = dcap_qvl_alone(case).ok()?;
                Some(format!("{}: dcap-qvl says {}, the pre-checks: {precheck}", case.fault, report.status))
            })
            .collect()
    }

    /// What dcap-qvl 0.7.1 alone accepts and only the pre-checks refuse (as a collateral fault: a
    /// retry, never an acceptance): a PCK leaf issued by the root directly, with no PCK CA. dcap-qvl
    /// checks the leaf under whatever issuer its path has (here the root, which the root CA CRL covers)
    /// and verifies the PCK CRL's signature only when a certificate on the path needs it. Intel's root
    /// never issues PCK leaves, so only the holder of the root's key can make one, and that key is
    /// every verifier's anchor: nothing that key signs could be refused anyway. Pinned, so that a
    /// change in dcap-qvl is seen (TRUST.md section 1).
    #[test]
    fn dcap_qvl_alone_accepts_a_pck_leaf_only_the_root_key_can_issue() {
        let pki = pki();
        let by_root = self::pki().with_pck_leaf(true, true, (CERT_NOT_BEFORE, CERT_NOT_AFTER));
        let quote = by_root.quote(&params(SimTcb::UpToDate)).expect("quote");
        let other = SimulatedPki::from_seed([8; 32]).expect("other pki");
        let case =
            |fault, collateral| Case { fault, quote: quote.clone(), collateral, root: pki.root_ca_der(), refusal: "" };
        let accepted = accepted_by_dcap_qvl_alone(vec![
            case(
                "PCK leaf issued by the root directly (no PCK CA), the genuine PCK CRL",
                pki.collateral(ISSUED, NEXT).expect("collateral"),
            ),
            case(
                "PCK leaf issued by the root directly, a PCK CRL signed by a foreign key",
                pki.with_crl(false, &other.pck_ca_key, (ISSUED, NEXT), None),
            ),
            case(
                "PCK leaf issued by the root directly, an expired PCK CRL",
                pki.with_crl(false, &pki.pck_ca_key, (ISSUED, NOW - 1), None),
            ),
        ]);
        assert_eq!(accepted.len(), 3, "dcap-qvl alone accepts each of the three:\n{}", accepted.join("\n"));
    }

    /// The other difference: dcap-qvl reads RFC 3339 dates with an offset (and still enforces the window
    /// in UTC: the +02:00 case of `dcap_qvl_alone_refuses_every_collateral_fault_the_prechecks_refuse`);
    /// `attest/dates.rs` reads only `...Z` dates, so the pre-checks postpone them as unparsable. Intel
    /// writes `Z`: the pre-checks are stricter, and dcap-qvl misreads no date. Pinned like the one above.
    #[test]
    fn dcap_qvl_alone_accepts_offset_dates_the_prechecks_postpone() {
        let pki = pki();
        let quote = pki.quote(&params(SimTcb::UpToDate)).expect("quote");
        let offset = |t: u64| serde_json::Value::String(rfc3339(t).expect("date").replace('Z', "+00:00"));
        let case =
            |fault, collateral| Case { fault, quote: quote.clone(), collateral, root: pki.root_ca_der(), refusal: "" };
        let accepted = accepted_by_dcap_qvl_alone(vec![
            case(
                "TCB info dates written with +00:00",
                pki.with_tcb_info(&pki, |j| {
                    j["issueDate"] = offset(ISSUED);
                    j["nextUpdate"] = offset(NEXT);
                }),
            ),
            case(
                "QE identity dates written with +00:00",
                pki.with_qe_identity(&pki, |j| {
                    j["issueDate"] = offset(ISSUED);
                    j["nextUpdate"] = offset(NEXT);
                }),
            ),
        ]);
        assert_eq!(accepted.len(), 2, "dcap-qvl alone accepts both:\n{}", accepted.join("\n"));
    }
}
