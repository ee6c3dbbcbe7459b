//! ECDSA P-256 signature checks that do not redo the arithmetic for a (public key, message,
//! signature) triple already verified. Everything else — path building, validity at each quote's
//! `now`, revocation, subjects, windows — runs on every quote as before.
//!
//! Why: a holder checks each quote with the collateral of its platform, and the collateral's own
//! signatures (root CA CRL, TCB signing certificate, TCB info, QE identity) are the same bytes for
//! every quote until the collateral is refreshed; verifying them is most of the CPU a genuine quote
//! costs, and both our collateral checks (`pck.rs`) and dcap-qvl verify them again for every quote.
//!
//! Why it is sound: whether a signature verifies is a pure function of the triple (the algorithm is
//! fixed: [`MemoEcdsa`] is ECDSA P-256 SHA-256 only). A triple enters a memo only after ring verified
//! it, keyed by a SHA-256 digest of all three parts (length-prefixed, so no two triples share an
//! input), so a hit answers exactly what ring answered for the same bytes; an attacker who changes
//! any byte of a key, a signed body or a signature gets a miss and ring's verdict. Nothing else is
//! cached: a certificate or collateral whose time window closed, or that a CRL revokes, fails as it
//! always did, because those checks are not signatures.
//!
//! Two memos, so the bench and production measure the same work:
//! - [`Checked`]: what one verification has verified so far (its quote's PCK chain, its CRL
//!   lookups), so dcap-qvl does not redo our checks of the same quote. Dropped with the verification.
//! - [`SigMemo`]: shared by all quotes of a verifier; it only receives the triples of a collateral's
//!   own signatures, and only after that collateral passed every check for a quote. Bounded by
//!   [`CAPACITY`]: when full it is emptied (the next quotes verify again and refill it).
//!
//! dcap-qvl takes the algorithm through its public `Config` extension point ([`MemoConfig`]), which
//! can only name a `'static` algorithm, so the memos in effect are set per thread by [`within`],
//! around synchronous code only. Outside [`within`], [`MemoEcdsa`] is plain ring.

use rustls_pki_types::{AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm};
use sha2::{Digest, Sha256};
use std::{
    cell::RefCell,
    collections::HashSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

/// Most triples the shared memo holds: a collateral has about five, so a few hundred collaterals.
pub const CAPACITY: usize = 1024;

type Triple = [u8; 32];

fn ring() -> &'static dyn SignatureVerificationAlgorithm {
    webpki::ring::ECDSA_P256_SHA256
}

fn digest(public_key: &[u8], message: &[u8], signature: &[u8]) -> Triple {
    let mut h = Sha256::new();
    h.update(b"replicatoor sigmemo ecdsa-p256-sha256 v1");
    for part in [public_key, message, signature] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// Triples one verification has verified (only this module adds to it, and only after ring said
/// yes). Pass the same value to successive [`within`] calls of one quote's verification.
#[derive(Debug, Default, Clone)]
pub struct Checked(HashSet<Triple>);

/// The triples of collateral signatures that passed, shared by every quote a verifier checks.
#[derive(Debug, Default)]
pub struct SigMemo {
    triples: Mutex<HashSet<Triple>>,
    hits: AtomicU64,
    computed: AtomicU64,
}

impl SigMemo {
    /// Keep `checked` for every later quote. Call only once the collateral whose signatures these
    /// are passed all its checks: the memo must hold collateral signatures only, never a quote's own.
    pub fn remember(&self, checked: Checked) {
        if let Ok(mut t) = self.triples.lock() {
            if t.len() + checked.0.len() > CAPACITY {
                t.clear();
            }
            t.extend(checked.0.into_iter().take(CAPACITY));
        }
    }

    fn contains(&self, t: &Triple) -> bool {
        self.triples.lock().is_ok_and(|s| s.contains(t))
    }
}

struct Scope {
    memo: Arc<SigMemo>,
    checked: Checked,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Run `f` (synchronous) with [`MemoEcdsa`] skipping triples found in `memo` or `checked`, and adding
/// each triple it verifies to `checked`.
pub fn within<R>(memo: &Arc<SigMemo>, checked: &mut Checked, f: impl FnOnce() -> R) -> R {
    struct Restore<'a> {
        outer: Option<Scope>,
        checked: &'a mut Checked,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            if let Some(s) = SCOPE.replace(self.outer.take()) {
                *self.checked = s.checked;
            }
        }
    }
    let scope = Scope { memo: memo.clone(), checked: std::mem::take(checked) };
    let _restore = Restore { outer: SCOPE.replace(Some(scope)), checked };
    f()
}

/// ECDSA P-256 with SHA-256 (ring's, as webpki and dcap-qvl use it), answering from the memos of
/// the enclosing [`within`].
#[derive(Debug)]
pub struct MemoEcdsa;

/// The one instance, for APIs that want a `'static` algorithm.
pub static MEMO_ECDSA: MemoEcdsa = MemoEcdsa;

impl SignatureVerificationAlgorithm for MemoEcdsa {
    fn verify_signature(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        let Some(memo) = SCOPE.with_borrow(|s| s.as_ref().map(|s| s.memo.clone())) else {
            return ring().verify_signature(public_key, message, signature);
        };
        let t = digest(public_key, message, signature);
        let known = SCOPE.with_borrow(|s| s.as_ref().is_some_and(|s| s.checked.0.contains(&t))) || memo.contains(&t);
        if known {
            memo.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        memo.computed.fetch_add(1, Ordering::Relaxed);
        ring().verify_signature(public_key, message, signature)?;
        SCOPE.with_borrow_mut(|s| s.as_mut().map(|s| s.checked.0.insert(t)));
        Ok(())
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        ring().public_key_alg_id()
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        ring().signature_alg_id()
    }
}

/// dcap-qvl's audited parts with [`MemoEcdsa`] as its signature algorithm (its `Config` extension
/// point, for exactly this kind of substitution): `QuoteVerifier::<MemoConfig>::new_with_config`.
pub struct MemoConfig;

/// [`MemoConfig`]'s primitives: ring's hashes, [`MemoEcdsa`].
pub struct MemoCrypto;

impl dcap_qvl::config::CryptoProvider for MemoCrypto {
    fn sig_algo() -> &'static dyn SignatureVerificationAlgorithm {
        &MEMO_ECDSA
    }
    fn sha256(data: &[u8]) -> [u8; 32] {
        dcap_qvl::crypto::RingCrypto::sha256(data)
    }
    fn sha384(data: &[u8]) -> [u8; 48] {
        dcap_qvl::crypto::RingCrypto::sha384(data)
    }
}

impl dcap_qvl::config::Config for MemoConfig {
    type X509 = dcap_qvl::x509::X509CertBackend;
    type SigEncoder = dcap_qvl::signature::DerSigEncoder;
    type Crypto = MemoCrypto;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the tests (here and the verifier's) read of a memo.
    impl SigMemo {
        /// Signature checks answered from a memo (this one or a [`Checked`]) under this memo.
        pub(crate) fn hits(&self) -> u64 {
            self.hits.load(Ordering::Relaxed)
        }

        /// Signature checks ring computed under this memo.
        pub(crate) fn computed(&self) -> u64 {
            self.computed.load(Ordering::Relaxed)
        }

        /// How many triples it holds.
        pub(crate) fn len(&self) -> usize {
            self.triples.lock().map_or(0, |t| t.len())
        }
    }

    /// A genuine triple: the TCB info of the dcap-qvl sample collateral, signed by Intel's TCB
    /// signing key (read from its issuer chain).
    fn genuine() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dcap-qvl-samples");
        let c: dcap_qvl::QuoteCollateralV3 =
            serde_json::from_slice(&std::fs::read(dir.join("tdx_quote_collateral.json")).expect("fixture"))
                .expect("collateral");
        use der::Decode;
        let signer = pem::parse_many(&c.tcb_info_issuer_chain).expect("chain").remove(0);
        let cert = x509_cert::Certificate::from_der(signer.contents()).expect("signer certificate");
        let key = cert.tbs_certificate().subject_public_key_info().subject_public_key.raw_bytes().to_vec();
        let sig = (dcap_qvl::verify::ring::backend().encode_ecdsa)(&c.tcb_info_signature).expect("DER signature");
        (key, c.tcb_info.into_bytes(), sig)
    }

    #[test]
    fn a_remembered_triple_is_answered_and_any_other_byte_is_verified() {
        let (key, body, sig) = genuine();
        let memo = Arc::new(SigMemo::default());
        let mut checked = Checked::default();
        within(&memo, &mut checked, || MEMO_ECDSA.verify_signature(&key, &body, &sig)).expect("genuine");
        assert_eq!((memo.computed(), memo.hits(), checked.0.len()), (1, 0, 1));
        // The same verification again: from `checked`.
        within(&memo, &mut checked, || MEMO_ECDSA.verify_signature(&key, &body, &sig)).expect("genuine");
        assert_eq!((memo.computed(), memo.hits()), (1, 1));
        // Another verification: not until remembered.
        memo.remember(checked);
        let mut fresh = Checked::default();
        within(&memo, &mut fresh, || MEMO_ECDSA.verify_signature(&key, &body, &sig)).expect("genuine");
        assert_eq!((memo.computed(), memo.hits(), fresh.0.len()), (1, 2, 0));
        // One byte changed in the body, the signature or the key: ring decides, and says no.
        let mut forged = body.clone();
        forged[10] ^= 1;
        let mut bad_sig = sig.clone();
        let last = bad_sig.len() - 1;
        bad_sig[last] ^= 1;
        let mut bad_key = key.clone();
        bad_key[64] ^= 1;
        for (k, b, s) in [(&key, &forged, &sig), (&key, &body, &bad_sig), (&bad_key, &body, &sig)] {
            assert!(within(&memo, &mut fresh, || MEMO_ECDSA.verify_signature(k, b, s)).is_err());
        }
        assert_eq!((memo.computed(), memo.hits(), fresh.0.len()), (4, 2, 0));
        // Outside a scope: plain ring, no counting.
        MEMO_ECDSA.verify_signature(&key, &body, &sig).expect("genuine");
        assert!(MEMO_ECDSA.verify_signature(&key, &forged, &sig).is_err());
        assert_eq!(memo.computed(), 4);
    }

    #[test]
    fn the_shared_memo_is_bounded() {
        let memo = SigMemo::default();
        for round in 0..3u8 {
            let many = (0..=u16::MAX).take(CAPACITY / 2 + 1).map(|i| digest(&[round], &i.to_be_bytes(), b""));
            memo.remember(Checked(many.collect()));
            assert!(memo.len() <= CAPACITY);
        }
        assert_eq!(memo.len(), CAPACITY / 2 + 1);
    }
}
