//! Atomic installation of the secret file: temp file in the same directory, fsync, rename,
//! fsync the directory, mode 0600. A reader sees the old file or the whole new one, never a part.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::Path,
};

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
    let tmp = dir.join(format!("{prefix}{}", std::process::id()));
    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
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

/// A crash between writing the temp file and renaming it leaves that file (the whole secret) behind
/// under the dead process's id; the next install removes it.
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
