//! The decoder (PROTOCOL.md §3.9): deterministic and strict, so every holder and auditor rebuilds the
//! same raw quote, and each raw quote has at most one compact form.

use base64::{engine::general_purpose::STANDARD, Engine};
use std::borrow::Cow;

/// Largest quote a reader rebuilds or parses (the contract caps the `quote` argument at 16 KiB too).
pub const MAX_QUOTE_LEN: usize = 16 * 1024;
/// TDX TEE type in the quote header: the only TEE a compact quote carries.
const TEE_TYPE_TDX: u32 = 0x81;
/// Intel's SGX Root CA, id 0x01 of the table: the kernel's pinned root file, read from there so the
/// table cannot name another certificate by that id (`tests/compact_decode.rs` also pins all three to
/// PROTOCOL.md's Appendix A).
const INTEL_ROOT_CA_DER: &[u8] = include_bytes!("../../core/src/attest/intel_sgx_root_ca.der");

/// The first four bytes of a compact quote. As a little-endian u16 (what a raw quote starts
/// with: its version, 3, 4 or 5) they read 0x5052, which no DCAP quote version is.
pub const MAGIC: [u8; 4] = *b"RPQC";
/// The compact quote format version.
pub const FORMAT_VERSION: u8 = 0x01;

/// Well-known certificates: `(id, DER)`. Ids are never reused (PROTOCOL.md §3.9 table).
pub const WELL_KNOWN: [(u8, &[u8]); 3] = [
    (0x01, INTEL_ROOT_CA_DER),
    (0x02, include_bytes!("intel_sgx_pck_platform_ca.der")),
    (0x03, include_bytes!("intel_sgx_pck_processor_ca.der")),
];

/// Most certificates a chain may hold.
pub const MAX_CERTS: usize = 8;
/// Largest DER certificate carried inline.
pub const MAX_DER_LEN: usize = 4096;

// The raw quote's layout (PROTOCOL.md §3.9), public for the encoder, which reads a raw quote by it.
/// Length of a DCAP quote header.
pub const HEADER_LEN: usize = 48;
/// The bytes [`header_and_body_len`] reads: the header and a v5 quote's body descriptor.
pub const HEAD_PEEK_LEN: usize = HEADER_LEN + 6;
const TD10_LEN: usize = 584;
const TD15_LEN: usize = 648;
const ATT_KEY_TYPE_ECDSA_P256: u16 = 2;
/// Certification data type of QE report certification data (wraps the PCK chain).
pub const CERT_TYPE_QE_REPORT: u16 = 6;
/// Certification data type of a PEM PCK certificate chain.
pub const CERT_TYPE_PCK_CHAIN: u16 = 5;
/// Length of the quote signature and the attestation key.
pub const SIG_AND_KEY_LEN: usize = 128;
/// Length of the QE report and its signature.
pub const QE_REPORT_AND_SIG_LEN: usize = 448;
/// First line of a certificate in the canonical PEM rendering.
pub const PEM_BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----\n";
/// Last line of a certificate in the canonical PEM rendering.
pub const PEM_END: &[u8] = b"-----END CERTIFICATE-----\n";
const PEM_LINE: usize = 64;

/// Which form a posted quote has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuoteForm {
    /// The quote as the platform produced it.
    Raw,
    /// Compact quote v1.
    Compact,
}

impl QuoteForm {
    /// The form of `posted`: compact iff it begins with [`MAGIC`].
    pub fn of(posted: &[u8]) -> QuoteForm {
        if posted.starts_with(&MAGIC) {
            QuoteForm::Compact
        } else {
            QuoteForm::Raw
        }
    }
}

impl std::fmt::Display for QuoteForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QuoteForm::Raw => "raw",
            QuoteForm::Compact => "compact",
        })
    }
}

/// Why a compact quote does not decode (a malformed quote: refusal 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The input ends inside a field.
    #[error("compact quote truncated at byte {at}: {field} needs {need} bytes")]
    Truncated {
        /// Offset where the field starts.
        at: usize,
        /// The field.
        field: &'static str,
        /// Its length.
        need: usize,
    },
    /// Format version other than 0x01.
    #[error("compact quote format version {0:#04x} is unknown")]
    UnknownVersion(u8),
    /// The carried header is not a TDX v4/v5 ECDSA-P256 quote with a TD 1.0/1.5 body.
    #[error("compact quote header unsupported: {0}")]
    Header(String),
    /// A length or count outside its range.
    #[error("compact quote {field} = {value} is out of range {min}..={max}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Its value.
        value: usize,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
    /// A certificate id that is not in the table.
    #[error("compact quote certificate {index} has unknown id {id:#04x}")]
    UnknownId {
        /// Position in the chain.
        index: usize,
        /// The id.
        id: u8,
    },
    /// An inline certificate that has an id (the canonical form uses the id).
    #[error("compact quote certificate {index} is carried as DER but is well-known id {id:#04x}")]
    NotCanonical {
        /// Position in the chain.
        index: usize,
        /// The id it must use.
        id: u8,
    },
    /// Bytes after the last field.
    #[error("compact quote has {0} trailing bytes")]
    TrailingBytes(usize),
    /// The rebuilt quote would exceed the quote size cap.
    #[error("compact quote rebuilds to {0} bytes, over the {MAX_QUOTE_LEN} byte limit")]
    TooLarge(usize),
}

/// The raw quote of a posted `quote` argument: itself if raw, rebuilt if compact. The one entry
/// point every reader of a posted quote goes through.
pub fn to_raw(posted: &[u8]) -> Result<Cow<'_, [u8]>, CompactError> {
    match QuoteForm::of(posted) {
        QuoteForm::Raw => Ok(Cow::Borrowed(posted)),
        QuoteForm::Compact => decode(posted).map(Cow::Owned),
    }
}

/// Reads fields in order, with the offset for errors.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CompactError> {
        let out = self.at.checked_add(n).and_then(|end| self.buf.get(self.at..end));
        let out = out.ok_or(CompactError::Truncated { at: self.at, field, need: n })?;
        self.at += n;
        Ok(out)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, CompactError> {
        Ok(self.take(1, field)?[0])
    }
    fn be16(&mut self, field: &'static str) -> Result<usize, CompactError> {
        let b = self.take(2, field)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn le16(&mut self, field: &'static str) -> Result<usize, CompactError> {
        let b = self.take(2, field)?;
        Ok(usize::from(u16::from_le_bytes([b[0], b[1]])))
    }
    fn rest(&self) -> usize {
        self.buf.len() - self.at
    }
}

fn range(field: &'static str, value: usize, min: usize, max: usize) -> Result<usize, CompactError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(CompactError::OutOfRange { field, value, min, max })
    }
}

/// Length of header + body of a quote starting with `head` (the header and, for v5, the body
/// descriptor), checking it is a TDX ECDSA-P256 quote with a TD 1.0/1.5 body.
pub fn header_and_body_len(head: &[u8; HEAD_PEEK_LEN]) -> Result<usize, String> {
    let le16 = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]);
    let (version, att_key, tee) = (le16(0), le16(2), u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
    if tee != TEE_TYPE_TDX || att_key != ATT_KEY_TYPE_ECDSA_P256 {
        return Err(format!("TEE type {tee:#x}, attestation key type {att_key} (need TDX 0x81, ECDSA-P256 2)"));
    }
    match version {
        4 => Ok(HEADER_LEN + TD10_LEN),
        5 => {
            let body_type = le16(HEADER_LEN);
            let size = u32::from_le_bytes([head[50], head[51], head[52], head[53]]);
            match (body_type, size) {
                (2, 584) => Ok(HEADER_LEN + 6 + TD10_LEN),
                (3, 648) => Ok(HEADER_LEN + 6 + TD15_LEN),
                _ => Err(format!("version 5 body type {body_type} of {size} bytes (need 2/584 or 3/648)")),
            }
        }
        v => Err(format!("quote version {v} (need 4 or 5)")),
    }
}

/// Canonical PEM of one certificate: header line, base64 in 64-character lines, footer line.
fn render_pem(der: &[u8], out: &mut Vec<u8>) {
    let b64 = STANDARD.encode(der);
    out.extend_from_slice(PEM_BEGIN);
    for line in b64.as_bytes().chunks(PEM_LINE) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(PEM_END);
}

fn pem_len(der_len: usize) -> usize {
    let b64 = der_len.div_ceil(3) * 4;
    PEM_BEGIN.len() + b64 + b64.div_ceil(PEM_LINE) + PEM_END.len()
}

/// Rebuild the raw quote from a compact one (PROTOCOL.md §3.9). Strict: any deviation from the
/// one canonical form is an error. Allocates only after the rebuilt length is known to fit
/// [`MAX_QUOTE_LEN`].
pub fn decode(compact: &[u8]) -> Result<Vec<u8>, CompactError> {
    let mut r = Reader { buf: compact, at: 0 };
    if r.take(4, "magic")? != MAGIC {
        return Err(CompactError::Header("magic is not \"RPQC\"".into()));
    }
    let version = r.u8("format version")?;
    if version != FORMAT_VERSION {
        return Err(CompactError::UnknownVersion(version));
    }
    let body_at = r.at;
    let peek = compact
        .get(body_at..body_at + HEAD_PEEK_LEN)
        .and_then(|p| p.try_into().ok())
        .ok_or(CompactError::Truncated { at: body_at, field: "quote header", need: HEAD_PEEK_LEN })?;
    let head_len = header_and_body_len(peek).map_err(CompactError::Header)?;
    let head = r.take(head_len, "quote header and body")?;
    let sig_and_key = r.take(SIG_AND_KEY_LEN, "quote signature and attestation key")?;
    let qe = r.take(QE_REPORT_AND_SIG_LEN, "QE report and signature")?;
    let auth_len = r.le16("QE auth data length")?;
    let auth = r.take(auth_len, "QE auth data")?;
    let count = range("certificate count", usize::from(r.u8("certificate count")?), 1, MAX_CERTS)?;
    let mut certs: Vec<&[u8]> = Vec::with_capacity(count);
    for index in 0..count {
        match r.u8("certificate id")? {
            0 => {
                let len = range("DER length", r.be16("DER length")?, 1, MAX_DER_LEN)?;
                let der = r.take(len, "DER certificate")?;
                if let Some((id, _)) = WELL_KNOWN.iter().find(|(_, known)| *known == der) {
                    return Err(CompactError::NotCanonical { index, id: *id });
                }
                certs.push(der);
            }
            id => {
                let (_, der) =
                    WELL_KNOWN.iter().find(|(k, _)| *k == id).ok_or(CompactError::UnknownId { index, id })?;
                certs.push(der);
            }
        }
    }
    let padding = r.be16("zero padding")?;
    if r.rest() != 0 {
        return Err(CompactError::TrailingBytes(r.rest()));
    }

    let pem_total = certs.iter().map(|d| pem_len(d.len())).sum::<usize>() + 1;
    let qe_cert_len = QE_REPORT_AND_SIG_LEN + 2 + auth.len() + 6 + pem_total;
    let sig_data_len = SIG_AND_KEY_LEN + 6 + qe_cert_len;
    let total = head.len() + 4 + sig_data_len + padding;
    if total > MAX_QUOTE_LEN {
        return Err(CompactError::TooLarge(total));
    }
    let u32le = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(head);
    out.extend_from_slice(&u32le(sig_data_len));
    out.extend_from_slice(sig_and_key);
    out.extend_from_slice(&CERT_TYPE_QE_REPORT.to_le_bytes());
    out.extend_from_slice(&u32le(qe_cert_len));
    out.extend_from_slice(qe);
    out.extend_from_slice(&u16::try_from(auth.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(auth);
    out.extend_from_slice(&CERT_TYPE_PCK_CHAIN.to_le_bytes());
    out.extend_from_slice(&u32le(pem_total));
    for der in &certs {
        render_pem(der, &mut out);
    }
    out.push(0);
    out.resize(total, 0);
    debug_assert_eq!(out.len(), total);
    Ok(out)
}
