//! The secret bundle: the cluster key plus the app's secret file, in a versioned binary encoding.
//!
//! Layout v1 (PROTOCOL.md §3.4): `"RPLB" ‖ 0x01 ‖ clusterKey(32) ‖ be64(epoch) ‖ be32(len) ‖ file(len)`.

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use std::fmt;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"RPLB";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 32 + 8 + 4;
/// Largest secret file a bundle carries; the sealed bundle must fit the contract's 128 KiB cap.
pub const MAX_SECRET_FILE: usize = 120 * 1024;

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
}

/// The secret state a cluster hands on. Zeroized on drop; `Debug` never shows the secret.
#[derive(Clone)]
pub struct SecretBundle {
    cluster_key: Zeroizing<[u8; 32]>,
    epoch: u64,
    file: Zeroizing<Vec<u8>>,
    /// Derived once: every delivery and refusal signs with it.
    signer: PrivateKeySigner,
}

impl SecretBundle {
    /// A bundle for a new cluster (validates the key and the file size).
    pub fn new(cluster_key: Zeroizing<[u8; 32]>, epoch: u64, file: Zeroizing<Vec<u8>>) -> Result<Self, BundleError> {
        if file.len() > MAX_SECRET_FILE {
            return Err(BundleError::TooLarge { len: file.len(), max: MAX_SECRET_FILE });
        }
        let signer = PrivateKeySigner::from_slice(cluster_key.as_slice()).map_err(|_| BundleError::BadClusterKey)?;
        Ok(SecretBundle { cluster_key, epoch, file, signer })
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

    /// Encode as v1.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(HEADER_LEN + self.file.len()));
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(self.cluster_key.as_slice());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&(self.file.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.file);
        out
    }

    /// Decode a v1 bundle, strictly (no trailing bytes).
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
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&bytes[5..37]);
        let epoch =
            u64::from_be_bytes(bytes[37..45].try_into().map_err(|_| BundleError::Truncated { len: bytes.len() })?);
        let declared =
            u32::from_be_bytes(bytes[45..49].try_into().map_err(|_| BundleError::Truncated { len: bytes.len() })?)
                as usize;
        let present = bytes.len() - HEADER_LEN;
        if declared != present {
            return Err(BundleError::LengthMismatch { declared, present });
        }
        SecretBundle::new(key, epoch, Zeroizing::new(bytes[HEADER_LEN..].to_vec()))
    }
}

impl fmt::Debug for SecretBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBundle")
            .field("cluster", &self.cluster_address())
            .field("epoch", &self.epoch)
            .field("file_len", &self.file.len())
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
        assert_eq!(enc.len(), HEADER_LEN + 10);
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
        bad[4] = 2;
        assert_eq!(SecretBundle::decode(&bad).unwrap_err(), BundleError::UnsupportedVersion(2));
        let mut bad = enc.to_vec();
        bad.push(0);
        assert!(matches!(SecretBundle::decode(&bad), Err(BundleError::LengthMismatch { declared: 10, present: 11 })));
        let mut bad = enc.to_vec();
        bad[5..37].copy_from_slice(&[0u8; 32]);
        assert_eq!(SecretBundle::decode(&bad).unwrap_err(), BundleError::BadClusterKey);
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
