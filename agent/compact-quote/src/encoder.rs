//! The encoder a posting node runs (PROTOCOL.md §3.9): a raw quote's PEM PCK chain carried as DER, or
//! as the one-byte ids of Intel's well-known CA certificates. [`encode`] keeps a compact form only if
//! [`crate::decode`] rebuilds exactly the raw quote, so it can make a post bigger, never
//! different.

use crate::decoder::{
    decode, header_and_body_len, CERT_TYPE_PCK_CHAIN, CERT_TYPE_QE_REPORT, FORMAT_VERSION, HEAD_PEEK_LEN, MAGIC,
    MAX_CERTS, PEM_BEGIN, PEM_END, QE_REPORT_AND_SIG_LEN, SIG_AND_KEY_LEN, WELL_KNOWN,
};
use base64::{engine::general_purpose::STANDARD, Engine};

/// The form a node posts: compact if `raw` has an exact compact form, otherwise `raw` itself.
pub fn to_posted(raw: &[u8]) -> Vec<u8> {
    encode(raw).unwrap_or_else(|| raw.to_vec())
}

/// Reads a raw quote's fields in order; `None` past the end.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }
    fn le16(&mut self) -> Option<usize> {
        let b = self.take(2)?;
        Some(usize::from(u16::from_le_bytes([b[0], b[1]])))
    }
    fn le32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok()
    }
}

/// The compact form of `raw`, or `None` when it has none that rebuilds exactly these bytes (not a
/// TDX v4/v5 quote with QE-report certification data holding a PEM chain in canonical rendering,
/// or non-zero bytes after the signature data). Then the quote is posted raw.
pub fn encode(raw: &[u8]) -> Option<Vec<u8>> {
    let mut r = Reader { buf: raw, at: 0 };
    let head_len = header_and_body_len(raw.get(..HEAD_PEEK_LEN)?.try_into().ok()?).ok()?;
    let head = r.take(head_len)?;
    let sig_data_len = r.le32()?;
    let sig_and_key = r.take(SIG_AND_KEY_LEN)?;
    if r.le16()? != usize::from(CERT_TYPE_QE_REPORT) {
        return None;
    }
    r.take(4)?;
    let qe = r.take(QE_REPORT_AND_SIG_LEN)?;
    let auth_len = r.le16()?;
    let auth = r.take(auth_len)?;
    if r.le16()? != usize::from(CERT_TYPE_PCK_CHAIN) {
        return None;
    }
    let pem_len = r.le32()?;
    let pem = r.take(pem_len)?;
    let ders = parse_pem_chain(pem)?;
    let padding = raw.len().checked_sub(head_len + 4 + sig_data_len)?;

    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(head);
    out.extend_from_slice(sig_and_key);
    out.extend_from_slice(qe);
    out.extend_from_slice(&u16::try_from(auth_len).ok()?.to_le_bytes());
    out.extend_from_slice(auth);
    out.push(u8::try_from(ders.len()).ok()?);
    for der in &ders {
        match WELL_KNOWN.iter().find(|(_, known)| *known == der.as_slice()) {
            Some((id, _)) => out.push(*id),
            None => {
                out.push(0);
                out.extend_from_slice(&u16::try_from(der.len()).ok()?.to_be_bytes());
                out.extend_from_slice(der);
            }
        }
    }
    out.extend_from_slice(&u16::try_from(padding).ok()?.to_be_bytes());
    // Exact or nothing: whatever the canonical rendering or the length fields would change, the
    // quote goes raw.
    (decode(&out).ok()? == raw).then_some(out)
}

/// The DER certificates of a PEM chain followed by one NUL, or `None` if it is anything else.
/// Leniency is harmless here: [`encode`] keeps a compact form only if it rebuilds the same bytes.
fn parse_pem_chain(pem: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut rest = pem.strip_suffix(&[0])?;
    let mut ders = Vec::new();
    while !rest.is_empty() {
        let body = rest.strip_prefix(PEM_BEGIN)?;
        let end = body.windows(PEM_END.len()).position(|w| w == PEM_END)?;
        let b64: Vec<u8> = body[..end].iter().copied().filter(|b| *b != b'\n').collect();
        ders.push(STANDARD.decode(b64).ok()?);
        rest = &body[end + PEM_END.len()..];
        if ders.len() > MAX_CERTS {
            return None;
        }
    }
    (!ders.is_empty()).then_some(ders)
}
