//! HPKE (RFC 9180) base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305.

use hpke::{
    aead::ChaCha20Poly1305, kdf::HkdfSha256, kem::X25519HkdfSha256, Deserializable, Kem as _, OpModeR, OpModeS,
    Serializable,
};
use zeroize::Zeroizing;

type Kem = X25519HkdfSha256;
type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type PublicKey = <Kem as hpke::Kem>::PublicKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

/// Length of an X25519 public key and of an encapsulated key.
pub const KEY_LEN: usize = 32;

/// HPKE failures. None of them carries key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HpkeError {
    /// The recipient key is not usable (e.g. a low-order point gives an all-zero shared secret).
    #[error("recipient public key is not a usable X25519 key")]
    BadPublicKey,
    /// The encapsulated key has the wrong length or is unusable.
    #[error("encapsulated key is malformed")]
    BadEncapsulatedKey,
    /// Authentication failed: wrong key, wrong context, or a corrupted ciphertext.
    #[error("ciphertext failed authentication (corrupted, or sealed to another key or context)")]
    OpenFailed,
}

/// A node's HPKE key pair. The private half is zeroized on drop by the hpke crate.
pub struct HpkeKeypair {
    sk: PrivateKey,
    pk: [u8; KEY_LEN],
}

impl HpkeKeypair {
    /// A fresh key pair from the OS RNG.
    pub fn generate() -> Self {
        let (sk, pk) = Kem::gen_keypair();
        HpkeKeypair { sk, pk: pk.to_bytes().into() }
    }

    /// Rebuild from the persisted private key.
    pub fn from_secret(bytes: &[u8; KEY_LEN]) -> Result<Self, HpkeError> {
        let sk = PrivateKey::from_bytes(bytes).map_err(|_| HpkeError::BadPublicKey)?;
        let pk = Kem::sk_to_pk(&sk);
        Ok(HpkeKeypair { sk, pk: pk.to_bytes().into() })
    }

    /// The private key bytes, for persisting.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.sk.to_bytes().into())
    }

    /// The public key, as posted on chain.
    pub fn public(&self) -> [u8; KEY_LEN] {
        self.pk
    }

    /// Open a ciphertext sealed to this key with `info` and `aad`.
    pub fn open(&self, enc: &[u8], info: &[u8], aad: &[u8], ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
        let enc = EncappedKey::from_bytes(enc).map_err(|_| HpkeError::BadEncapsulatedKey)?;
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(&OpModeR::Base, &self.sk, &enc, info, ct, aad)
            .map(Zeroizing::new)
            .map_err(|_| HpkeError::OpenFailed)
    }
}

/// An HPKE ciphertext with its encapsulated key.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The sender's ephemeral public key (`enc` in RFC 9180).
    pub encapsulated_key: [u8; KEY_LEN],
    /// The AEAD ciphertext, tag included.
    pub ciphertext: Vec<u8>,
}

/// Seal `plaintext` to `recipient`. Crate-private: holders reach it only through
/// `delivery::seal`, which takes an accepted request, so nothing is sealed to an unverified key.
pub(crate) fn seal(recipient: &[u8; KEY_LEN], info: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Sealed, HpkeError> {
    let pk = PublicKey::from_bytes(recipient).map_err(|_| HpkeError::BadPublicKey)?;
    let (enc, ciphertext) =
        hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem>(&OpModeS::Base, &pk, info, plaintext, aad)
            .map_err(|_| HpkeError::BadPublicKey)?;
    Ok(Sealed { encapsulated_key: enc.to_bytes().into(), ciphertext })
}

/// Whether `key` can receive a sealed message (rejects low-order points before any work is posted).
///
/// HPKE's seal fails exactly when the X25519 shared secret is all zero (RFC 9180 §7.1.4), which
/// happens for every clamped scalar at once when the point's order divides 8: one multiplication by
/// any fixed scalar tells (a third of a probe seal's cost), and the real seal still checks again.
pub fn is_usable_public_key(key: &[u8; KEY_LEN]) -> bool {
    x25519_dalek::x25519([0x42; KEY_LEN], *key) != [0u8; KEY_LEN]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_context_binding() {
        let kp = HpkeKeypair::generate();
        let s = seal(&kp.public(), b"info", b"aad", b"hello").unwrap();
        assert_eq!(s.ciphertext.len(), 5 + 16);
        assert_eq!(kp.open(&s.encapsulated_key, b"info", b"aad", &s.ciphertext).unwrap().as_slice(), b"hello");
        assert_eq!(kp.open(&s.encapsulated_key, b"other", b"aad", &s.ciphertext), Err(HpkeError::OpenFailed));
        assert_eq!(kp.open(&s.encapsulated_key, b"info", b"x", &s.ciphertext), Err(HpkeError::OpenFailed));
        let mut ct = s.ciphertext.clone();
        ct[0] ^= 1;
        assert_eq!(kp.open(&s.encapsulated_key, b"info", b"aad", &ct), Err(HpkeError::OpenFailed));
        assert_eq!(kp.open(&s.encapsulated_key, b"info", b"aad", &s.ciphertext[..10]), Err(HpkeError::OpenFailed));
        let other = HpkeKeypair::generate();
        assert_eq!(other.open(&s.encapsulated_key, b"info", b"aad", &s.ciphertext), Err(HpkeError::OpenFailed));
    }

    #[test]
    fn keypair_persists() {
        let kp = HpkeKeypair::generate();
        let back = HpkeKeypair::from_secret(&kp.secret_bytes()).unwrap();
        assert_eq!(back.public(), kp.public());
    }

    #[test]
    fn low_order_points_are_rejected() {
        // The all-zero point and the order-2/order-8 points of Curve25519 give a zero shared secret.
        let zero = [0u8; 32];
        let mut one = [0u8; 32];
        one[0] = 1;
        let order8 = hex_literal("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
        for k in [zero, one, order8] {
            assert!(!is_usable_public_key(&k), "low-order key accepted: {}", hex::encode(k));
        }
        assert!(is_usable_public_key(&HpkeKeypair::generate().public()));
    }

    #[test]
    fn the_key_check_rejects_exactly_what_a_seal_rejects() {
        // Every u-coordinate of order dividing 8 on the curve and its twist (0, 1, the two order-8
        // points, p-1, and the non-canonical p and p+1), also with the ignored top bit set; then
        // random strings. The one-multiplication check must agree with a real seal on each.
        let mut keys: Vec<[u8; 32]> = [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ]
        .iter()
        .flat_map(|h| {
            let k = hex_literal(h);
            let mut top = k;
            top[31] |= 0x80;
            [k, top]
        })
        .collect();
        for k in &keys {
            assert!(!is_usable_public_key(k), "low-order key accepted: {}", hex::encode(k));
        }
        for i in 0..512u32 {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            k[4..].copy_from_slice(&HpkeKeypair::generate().public()[4..]);
            keys.push(k);
        }
        for k in &keys {
            assert_eq!(is_usable_public_key(k), seal(k, b"probe", b"", b"").is_ok(), "{}", hex::encode(k));
        }
    }

    fn hex_literal(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).unwrap();
        out
    }
}
