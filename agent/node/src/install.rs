//! Atomic installation of the secret file: a new temp file in the same directory (created
//! exclusively, never through a link, mode 0600 from the start), fsync, rename, fsync the directory.
//! A reader sees the old file or the whole new one, never a part.
//!
//! The directory is shared with the app, so whoever runs in it may plant files or links there: the
//! temp file's name is random, and an existing entry under it is never opened (O_EXCL, O_NOFOLLOW),
//! so the secret can neither be written through a planted link nor inherit a planted file's mode.

use replicatoor_core::crypto::SecretBundle;
use sha2::{Digest, Sha256};
use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};
use zeroize::Zeroizing;

/// Names tried before giving up: a clash with 64 random bits means someone is planting entries.
const NAME_ATTEMPTS: usize = 8;

/// Write `bytes` to `path` atomically with owner-only permissions.
pub fn install_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let name =
        path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "secret path has no file name"))?;
    let prefix = format!(".{}.replicatoor-tmp-", name.to_string_lossy());
    remove_stale_temp_files(dir, &prefix);
    let (tmp, mut f) = create_unique_temp(dir, &prefix)?;
    // From here the temp file is ours: remove it on any failure (it holds the whole secret).
    let result = (|| {
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        crate::failpoint::hit("install_before_rename");
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The keyring installed beside the secret file (PROTOCOL.md §5.4): `<secret_file>.keyring`.
pub fn keyring_path(secret_file: &Path) -> PathBuf {
    let mut name = secret_file.as_os_str().to_owned();
    name.push(".keyring");
    PathBuf::from(name)
}

/// Install what a bundle gives the app, each file atomically: first the keyring (every epoch's
/// secret, the newest included), then the newest secret at `secret_file`, so an app that sees a new
/// secret finds it in the keyring too. Returns the newest secret's SHA-256 (hex), what the store and
/// the logs name it by.
pub fn install_bundle(secret_file: &Path, bundle: &SecretBundle) -> io::Result<String> {
    install_atomically(&keyring_path(secret_file), &keyring_json(bundle))?;
    install_atomically(secret_file, bundle.file())?;
    Ok(hex::encode(Sha256::digest(bundle.file())))
}

/// `{"version":1,"epoch":N,"secrets":[{"epoch":E,"secret_hex":"…"},…]}`, oldest first, the bundle's own
/// secret last. Written by hand into a buffer that is wiped on drop: serde_json would leave copies of
/// the secrets' hex in freed memory.
fn keyring_json(bundle: &SecretBundle) -> Zeroizing<Vec<u8>> {
    let own = (bundle.epoch(), bundle.file());
    let entries = bundle.keyring().iter().map(|(e, s)| (*e, s.as_slice())).chain(std::iter::once(own));
    let size: usize = bundle.keyring().iter().map(|(_, s)| 2 * s.len() + 48).sum::<usize>() + 2 * own.1.len() + 96;
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    out.extend_from_slice(format!("{{\"version\":1,\"epoch\":{},\"secrets\":[", bundle.epoch()).as_bytes());
    for (i, (epoch, secret)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(format!("{{\"epoch\":{epoch},\"secret_hex\":\"").as_bytes());
        let start = out.len();
        out.resize(start + 2 * secret.len(), 0);
        // Cannot fail: the slice is exactly twice the secret's length.
        let _ = hex::encode_to_slice(secret, &mut out[start..]);
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}\n");
    out
}

/// A new file `<prefix><random hex>` in `dir`, retrying on a name that already exists.
fn create_unique_temp(dir: &Path, prefix: &str) -> io::Result<(PathBuf, File)> {
    for _ in 0..NAME_ATTEMPTS {
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| io::Error::other(format!("no randomness for a temp name: {e}")))?;
        let tmp = dir.join(format!("{prefix}{}", hex::encode(suffix)));
        match create_temp(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{NAME_ATTEMPTS} random temp names in {} were all taken", dir.display()),
    ))
}

/// Create `tmp`, which must not exist (not even as a dangling link), owner-only from creation.
fn create_temp(tmp: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let f = opts.open(tmp)?;
    // Reading the mode back: a umask can only narrow 0600, but a filesystem may ignore modes.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = f.metadata()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            drop(f);
            let _ = fs::remove_file(tmp);
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} was created with mode {mode:o}, not owner-only", tmp.display()),
            ));
        }
    }
    Ok(f)
}

/// A crash between writing the temp file and renaming it leaves that file (the whole secret) behind;
/// the next install removes it. Removing a planted link removes the link, never its target.
fn remove_stale_temp_files(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(prefix) {
            let _ = fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("replicatoor-install-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Whoever can write the secret's directory plants a link where the temp file will be: the
    /// secret must not be written through it (to a file the attacker can read, or over another).
    #[cfg(unix)]
    #[test]
    fn never_writes_through_a_planted_symlink() {
        let dir = scratch("symlink");
        let outside = dir.join("attacker-readable");
        fs::write(&outside, b"").unwrap();
        let planted = dir.join(".secret.bin.replicatoor-tmp-planted");
        std::os::unix::fs::symlink(&outside, &planted).unwrap();
        let err = create_temp(&planted).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(fs::read(&outside).unwrap(), b"", "nothing went through the link");
        // A dangling link (to where the attacker wants a copy) is not followed either.
        let dangling = dir.join(".secret.bin.replicatoor-tmp-dangling");
        std::os::unix::fs::symlink(dir.join("copy-for-attacker"), &dangling).unwrap();
        assert!(create_temp(&dangling).is_err());
        assert!(!dir.join("copy-for-attacker").exists(), "the link's target was not created");
        // The whole install puts the secret in the target, beside the planted links, and nowhere else.
        let old_name = dir.join(format!(".secret.bin.replicatoor-tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&outside, &old_name).unwrap();
        install_atomically(&dir.join("secret.bin"), b"the secret").unwrap();
        assert_eq!(fs::read(dir.join("secret.bin")).unwrap(), b"the secret");
        assert_eq!(fs::read(&outside).unwrap(), b"", "nothing went through the link at the old predictable name");
        let mut names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["attacker-readable", "secret.bin"], "stale links removed, no temp file left");
        let _ = fs::remove_dir_all(&dir);
    }

    /// The temp file is owner-only from the moment it exists (not chmod-ed after the write).
    #[cfg(unix)]
    #[test]
    fn temp_file_is_owner_only_from_creation() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("mode");
        let (tmp, _f) = create_unique_temp(&dir, ".secret.bin.replicatoor-tmp-").unwrap();
        assert_eq!(fs::symlink_metadata(&tmp).unwrap().permissions().mode() & 0o777, 0o600);
        let (other, _g) = create_unique_temp(&dir, ".secret.bin.replicatoor-tmp-").unwrap();
        assert_ne!(tmp, other, "random names");
        let _ = fs::remove_dir_all(&dir);
    }

    /// A file the attacker made (with its own, open permissions) is not reused: the secret would
    /// inherit them.
    #[cfg(unix)]
    #[test]
    fn never_reuses_a_planted_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("planted");
        let planted = dir.join(".secret.bin.replicatoor-tmp-planted");
        fs::write(&planted, b"").unwrap();
        fs::set_permissions(&planted, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(create_temp(&planted).map(|_| ()).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn installs_whole_file_with_0600_and_replaces_old() {
        let dir = std::env::temp_dir().join(format!("replicatoor-install-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("secret.bin");
        install_atomically(&path, b"first").unwrap();
        install_atomically(&path, b"second version").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second version");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
        let _ = fs::remove_dir_all(&dir);
    }

    /// The keyring lists every epoch's secret, oldest first and the newest last, in the documented
    /// JSON; the newest secret is also the secret file.
    #[test]
    fn installs_the_keyring_beside_the_secret() {
        let dir = scratch("keyring");
        let first = SecretBundle::new(Zeroizing::new([0x11; 32]), 1, Zeroizing::new(b"one".to_vec())).unwrap();
        let second = first.rotated(Zeroizing::new([0x22; 32]), Zeroizing::new(vec![0xab, 0x01])).unwrap();
        let path = dir.join("secret.bin");
        let digest = install_bundle(&path, &second).unwrap();
        assert_eq!(fs::read(&path).unwrap(), [0xab, 0x01]);
        assert_eq!(digest, hex::encode(Sha256::digest([0xab, 0x01])));
        let ring: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("secret.bin.keyring")).unwrap()).unwrap();
        let want = serde_json::json!({"version": 1, "epoch": 2, "secrets": [
            {"epoch": 1, "secret_hex": hex::encode(b"one")},
            {"epoch": 2, "secret_hex": "ab01"},
        ]});
        assert_eq!(ring, want);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(dir.join("secret.bin.keyring")).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn removes_the_temp_file_of_a_crashed_install() {
        let dir = std::env::temp_dir().join(format!("replicatoor-install-crash-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let stale = dir.join(".secret.bin.replicatoor-tmp-999999");
        fs::write(&stale, b"whole secret, never renamed").unwrap();
        install_atomically(&dir.join("secret.bin"), b"secret").unwrap();
        assert!(!stale.exists(), "the crashed install's temp file is removed");
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["secret.bin"]);
        let _ = fs::remove_dir_all(&dir);
    }
}
