//! The secret bundle: the cluster key, the app's secret file, and the keyring (every earlier epoch's
//! secret, so that an app reads what it wrote before a rotation), in a versioned binary encoding.
//!
//! Layout v2 (PROTOCOL.md §3.4): `"RPLB" ‖ 0x02 ‖ clusterKey(32) ‖ be64(epoch) ‖ be32(len) ‖ file(len)
//! ‖ be16(n) ‖ n × (be64(epoch_i) ‖ be32(len_i) ‖ secret_i(len_i))`, the keyring's epochs strictly
//! increasing and below `epoch`. Version 1 (no keyring) belongs to protocol v5 and is not read.

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use std::fmt;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"RPLB";
const VERSION: u8 = 2;
const HEADER_LEN: usize = 4 + 1 + 32 + 8 + 4;
/// Largest secret file a bundle carries, and the most secret bytes it carries in all (the file and
/// the keyring's): the sealed bundle must fit the contract's 128 KiB cap.
pub const MAX_SECRET_FILE: usize = 120 * 1024;
/// Bytes a keyring entry adds besides its secret: be64(epoch) ‖ be32(len).
const ENTRY_HEADER_LEN: usize = 8 + 4;
/// Longest encoded bundle: sealed (the AEAD adds a 16-byte tag) it fits the contract's 128 KiB cap on
/// a ciphertext, however many epochs the keyring holds.
pub const MAX_BUNDLE_LEN: usize = 128 * 1024 - 16;

/// Why bytes are not a valid bundle. Never carries secret bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    /// Shorter than the fixed header.
    #[error("bundle truncated: {len} bytes, header needs {HEADER_LEN}")]
    Truncated {
        /// The bytes present.
        len: usize,
    },
    /// Does not start with "RPLB".
    #[error("bundle magic mismatch")]
    BadMagic,
    /// A version this agent does not understand.
    #[error("bundle version {0} not supported (this agent reads version {VERSION})")]
    UnsupportedVersion(u8),
    /// The declared file length disagrees with the bytes present.
    #[error("bundle file length {declared} does not match the {present} bytes present")]
    LengthMismatch {
        /// The length in the header.
        declared: usize,
        /// The bytes after the header.
        present: usize,
    },
    /// The secret file is larger than a delivery can carry.
    #[error("secret file of {len} bytes exceeds the {max} byte limit")]
    TooLarge {
        /// The file's length.
        len: usize,
        /// [`MAX_SECRET_FILE`].
        max: usize,
    },
    /// The cluster key is not a valid secp256k1 scalar.
    #[error("bundle cluster key is not a valid secp256k1 private key")]
    BadClusterKey,
    /// The keyring's epochs are not strictly increasing below the bundle's epoch.
    #[error("bundle keyring epoch {epoch} is not after the one before it and below the bundle's epoch {bundle_epoch}")]
    KeyringOrder {
        /// The entry's epoch.
        epoch: u64,
        /// The bundle's own epoch.
        bundle_epoch: u64,
    },
}

/// One earlier epoch's secret.
pub type KeyringEntry = (u64, Zeroizing<Vec<u8>>);

/// The secret state a cluster hands on. Zeroized on drop; `Debug` never shows the secret.
#[derive(Clone)]
pub struct SecretBundle {
    cluster_key: Zeroizing<[u8; 32]>,
    epoch: u64,
    file: Zeroizing<Vec<u8>>,
    /// Every earlier epoch's secret, oldest first.
    keyring: Vec<KeyringEntry>,
    /// Derived once: every delivery and refusal signs with it.
    signer: PrivateKeySigner,
}

impl SecretBundle {
    /// A bundle for a new cluster, with an empty keyring (validates the key and the file size).
    pub fn new(cluster_key: Zeroizing<[u8; 32]>, epoch: u64, file: Zeroizing<Vec<u8>>) -> Result<Self, BundleError> {
        Self::with_keyring(cluster_key, epoch, file, Vec::new())
    }

    /// A bundle that also carries earlier epochs' secrets (validates their order and the total size).
    pub fn with_keyring(
        cluster_key: Zeroizing<[u8; 32]>,
        epoch: u64,
        file: Zeroizing<Vec<u8>>,
        keyring: Vec<KeyringEntry>,
    ) -> Result<Self, BundleError> {
        let total = keyring.iter().map(|(_, s)| s.len()).fold(file.len(), usize::saturating_add);
        if total > MAX_SECRET_FILE {
            return Err(BundleError::TooLarge { len: total, max: MAX_SECRET_FILE });
        }
        let encoded = total + HEADER_LEN + 2 + ENTRY_HEADER_LEN * keyring.len();
        if encoded > MAX_BUNDLE_LEN || keyring.len() > usize::from(u16::MAX) {
            return Err(BundleError::TooLarge { len: encoded, max: MAX_BUNDLE_LEN });
        }
        let mut before = None;
        for (e, _) in &keyring {
            if before.is_some_and(|b| *e <= b) || *e >= epoch {
                return Err(BundleError::KeyringOrder { epoch: *e, bundle_epoch: epoch });
            }
            before = Some(*e);
        }
        let signer = PrivateKeySigner::from_slice(cluster_key.as_slice()).map_err(|_| BundleError::BadClusterKey)?;
        Ok(SecretBundle { cluster_key, epoch, file, keyring, signer })
    }

    /// The next epoch's bundle after a rotation: a new cluster key and a new secret, with this
    /// bundle's secret added to the keyring.
    pub fn rotated(&self, cluster_key: Zeroizing<[u8; 32]>, file: Zeroizing<Vec<u8>>) -> Result<Self, BundleError> {
        let mut keyring = self.keyring.clone();
        keyring.push((self.epoch, self.file.clone()));
        Self::with_keyring(cluster_key, self.epoch.saturating_add(1), file, keyring)
    }

    /// Every earlier epoch's secret, oldest first.
    pub fn keyring(&self) -> &[KeyringEntry] {
        &self.keyring
    }

    /// The epoch the cluster key belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The app's secret file.
    pub fn file(&self) -> &[u8] {
        &self.file
    }

    /// A signer for the cluster key.
    pub fn cluster_signer(&self) -> &PrivateKeySigner {
        &self.signer
    }

    /// The cluster address (what the contract stores).
    pub fn cluster_address(&self) -> Address {
        self.signer.address()
    }

    /// Encode as v2.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let ring: usize = self.keyring.iter().map(|(_, s)| ENTRY_HEADER_LEN + s.len()).sum();
        let mut out = Zeroizing::new(Vec::with_capacity(HEADER_LEN + self.file.len() + 2 + ring));
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(self.cluster_key.as_slice());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        // Lengths fit: the constructor caps every secret, and all of them, at MAX_SECRET_FILE.
        out.extend_from_slice(&(self.file.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.file);
        out.extend_from_slice(&(self.keyring.len() as u16).to_be_bytes());
        for (e, secret) in &self.keyring {
            out.extend_from_slice(&e.to_be_bytes());
            out.extend_from_slice(&(secret.len() as u32).to_be_bytes());
            out.extend_from_slice(secret);
        }
        out
    }

    /// Decode a v2 bundle, strictly (no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() < HEADER_LEN {
            return Err(BundleError::Truncated { len: bytes.len() });
        }
        if &bytes[..4] != MAGIC {
            return Err(BundleError::BadMagic);
        }
        if bytes[4] != VERSION {
            return Err(BundleError::UnsupportedVersion(bytes[4]));
        }
        // The fixed header is all there (checked above): these reads cannot fail.
        let mut rest = Reader(&bytes[5..]);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&rest.take(32)?);
        let epoch = u64::from_be_bytes(rest.array()?);
        let declared = u32::from_be_bytes(rest.array()?) as usize;
        let file = rest.take(declared)?;
        let n = u16::from_be_bytes(rest.array()?);
        let mut keyring = Vec::with_capacity(usize::from(n).min(rest.0.len() / ENTRY_HEADER_LEN));
        for _ in 0..n {
            let e = u64::from_be_bytes(rest.array()?);
            let len = u32::from_be_bytes(rest.array()?) as usize;
            keyring.push((e, rest.take(len)?));
        }
        if !rest.0.is_empty() {
            return Err(BundleError::LengthMismatch { declared: bytes.len() - rest.0.len(), present: bytes.len() });
        }
        SecretBundle::with_keyring(key, epoch, file, keyring)
    }
}

/// The bytes after the header, read front to back; a length past their end is a length mismatch.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, len: usize) -> Result<Zeroizing<Vec<u8>>, BundleError> {
        if len > self.0.len() {
            return Err(BundleError::LengthMismatch { declared: len, present: self.0.len() });
        }
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        Ok(Zeroizing::new(head.to_vec()))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BundleError> {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.take(N)?);
        Ok(out)
    }
}

impl fmt::Debug for SecretBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBundle")
            .field("cluster", &self.cluster_address())
            .field("epoch", &self.epoch)
            .field("file_len", &self.file.len())
            .field("keyring_epochs", &self.keyring.iter().map(|(e, _)| *e).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SecretBundle {
        SecretBundle::new(Zeroizing::new([0x11; 32]), 3, Zeroizing::new(b"top secret".to_vec())).unwrap()
    }

    #[test]
    fn round_trip() {
        let b = sample();
        let enc = b.encode();
        assert_eq!(enc.len(), HEADER_LEN + 10 + 2);
        let d = SecretBundle::decode(&enc).unwrap();
        assert_eq!(d.file(), b"top secret");
        assert_eq!(d.epoch(), 3);
        assert_eq!(d.cluster_address(), b.cluster_address());
    }

    #[test]
    fn strict_decoding() {
        let enc = sample().encode();
        assert!(matches!(SecretBundle::decode(&enc[..10]), Err(BundleError::Truncated { len: 10 })));
        let mut bad = enc.to_vec();
        bad[0] = b'X';
        assert_eq!(SecretBundle::decode(&bad).unwrap_err(), BundleError::BadMagic);
        let mut bad = enc.to_vec();
        bad[4] = 1;
        assert_eq!(SecretBundle::decode(&bad).unwrap_err(), BundleError::UnsupportedVersion(1));
        let mut bad = enc.to_vec();
        bad.push(0);
        assert!(matches!(SecretBundle::decode(&bad), Err(BundleError::LengthMismatch { .. })));
        let mut bad = enc.to_vec();
        bad[48] = 11;
        assert!(
            matches!(SecretBundle::decode(&bad), Err(BundleError::LengthMismatch { .. })),
            "file longer than present"
        );
        let mut bad = enc.to_vec();
        bad[5..37].copy_from_slice(&[0u8; 32]);
        assert_eq!(SecretBundle::decode(&bad).unwrap_err(), BundleError::BadClusterKey);
    }

    /// A rotation keeps every earlier secret, in order, through an encoding round trip; a keyring out
    /// of order, at or past the bundle's epoch, or too large in all is refused.
    #[test]
    fn keyring_survives_rotations() {
        let e1 = sample();
        let e2 = e1.rotated(Zeroizing::new([0x22; 32]), Zeroizing::new(b"second".to_vec())).unwrap();
        let e3 = e2.rotated(Zeroizing::new([0x33; 32]), Zeroizing::new(b"third".to_vec())).unwrap();
        let d = SecretBundle::decode(&e3.encode()).unwrap();
        assert_eq!((d.epoch(), d.file()), (5, &b"third"[..]));
        let ring: Vec<(u64, &[u8])> = d.keyring().iter().map(|(e, s)| (*e, s.as_slice())).collect();
        assert_eq!(ring, [(3, &b"top secret"[..]), (4, &b"second"[..])]);
        assert_ne!(d.cluster_address(), e2.cluster_address());
        assert_eq!(&d.encode()[..], &e3.encode()[..], "canonical");
        for (e, epoch) in [(4, 4), (5, 4)] {
            let ring = vec![(e, Zeroizing::new(vec![1]))];
            let got = SecretBundle::with_keyring(Zeroizing::new([0x11; 32]), epoch, Zeroizing::new(vec![2]), ring);
            assert!(matches!(got, Err(BundleError::KeyringOrder { .. })), "{e} in a bundle of epoch {epoch}");
        }
        let ring = vec![(2, Zeroizing::new(vec![1])), (1, Zeroizing::new(vec![1]))];
        let got = SecretBundle::with_keyring(Zeroizing::new([0x11; 32]), 3, Zeroizing::new(vec![2]), ring);
        assert!(matches!(got, Err(BundleError::KeyringOrder { epoch: 1, .. })));
        let half = || Zeroizing::new(vec![0u8; MAX_SECRET_FILE / 2 + 1]);
        let got = SecretBundle::with_keyring(Zeroizing::new([0x11; 32]), 2, half(), vec![(1, half())]);
        assert!(matches!(got, Err(BundleError::TooLarge { .. })), "the keyring counts against the cap");
        // Many small secrets: each entry's header counts too, so the sealed bundle always fits.
        let ring: Vec<KeyringEntry> = (1..=2000).map(|e| (e, Zeroizing::new(vec![0u8; 60]))).collect();
        let got = SecretBundle::with_keyring(Zeroizing::new([0x11; 32]), 2001, Zeroizing::new(vec![2]), ring);
        assert!(matches!(got, Err(BundleError::TooLarge { max: MAX_BUNDLE_LEN, .. })), "{got:?}");
    }

    #[test]
    fn debug_never_shows_secret() {
        let s = format!("{:?}", sample());
        assert!(!s.contains("top secret") && !s.contains("1111"), "{s}");
    }

    #[test]
    fn oversized_file_rejected() {
        let big = Zeroizing::new(vec![1u8; MAX_SECRET_FILE + 1]);
        assert!(matches!(SecretBundle::new(Zeroizing::new([0x11; 32]), 1, big), Err(BundleError::TooLarge { .. })));
    }
}
