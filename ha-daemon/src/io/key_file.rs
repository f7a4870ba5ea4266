//! Reads the shared heartbeat key file.
//!
//! The file holds the raw secret, any bytes; one trailing newline is not part of it (so
//! `head -c 32 /dev/urandom | base64 > cluster.key` works). Both nodes hold the same file.
//! It must be private to its owner: a mode that gives group or others any access is
//! refused, as is a secret shorter than [`MIN_KEY_LEN`] bytes.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::core::wire::{HeartbeatKey, KeyTooShort, MIN_KEY_LEN};

/// Why the key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be opened or read.
    #[error("heartbeat key file {}: cannot read: {source}", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is accessible by group or others.
    #[error(
        "heartbeat key file {}: mode {mode:04o}, must not be accessible by group or others (chmod 600)",
        path.display()
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The secret is too short.
    #[error("heartbeat key file {}: {len} bytes of key, at least {min} are required", path.display())]
    TooShort {
        /// The key file.
        path: PathBuf,
        /// Length of the secret, without the trailing newline.
        len: usize,
        /// The least accepted length, [`MIN_KEY_LEN`].
        min: usize,
    },
}

/// The heartbeat key in the file at `path`.
///
/// The mode is checked on the opened file, so it is the mode of the file that is read.
pub fn load(path: &Path) -> Result<HeartbeatKey, KeyFileError> {
    let read_error = |source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let mode = file.metadata().map_err(read_error)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut contents = Vec::new();
    file.read_to_end(&mut contents).map_err(read_error)?;
    let secret = contents.strip_suffix(b"\n").unwrap_or(&contents);
    HeartbeatKey::new(secret).map_err(|KeyTooShort { len }| KeyFileError::TooShort {
        path: path.to_owned(),
        len,
        min: MIN_KEY_LEN,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A file under the temporary directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        /// A new file holding `contents` with permission bits `mode`.
        fn new(contents: &[u8], mode: u32) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "ha-daemon-key-file-test-{}-{}.key",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let file = Self(path);
            fs::write(&file.0, contents).expect("write the temporary key file");
            fs::set_permissions(&file.0, fs::Permissions::from_mode(mode))
                .expect("set the mode of the temporary key file");
            file
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            // Best effort: a leftover file in the temporary directory is harmless.
            let _ = fs::remove_file(&self.0);
        }
    }

    #[test]
    fn a_private_key_of_any_bytes_is_loaded() {
        let mut secret: Vec<u8> = (0..=255).collect();
        secret.push(b'\n');
        for mode in [0o600, 0o400, 0o700] {
            let file = TempFile::new(&secret, mode);
            assert!(load(&file.0).is_ok(), "mode {mode:o}");
        }
    }

    #[test]
    fn the_key_is_the_contents_without_one_trailing_newline() {
        let file = TempFile::new(b"0123456789abcdef\n", 0o600);
        assert!(load(&file.0).is_ok());
        let file = TempFile::new(b"0123456789abcde\n", 0o600);
        assert!(matches!(
            load(&file.0),
            Err(KeyFileError::TooShort {
                len: 15,
                min: MIN_KEY_LEN,
                ..
            })
        ));
        // Only one newline is trimmed: the second one is a key byte.
        let file = TempFile::new(b"0123456789abcde\n\n", 0o600);
        assert!(load(&file.0).is_ok());
        let file = TempFile::new(b"", 0o600);
        assert!(matches!(
            load(&file.0),
            Err(KeyFileError::TooShort { len: 0, .. })
        ));
    }

    #[test]
    fn a_key_accessible_by_group_or_others_is_refused() {
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o601, 0o666] {
            let file = TempFile::new(b"0123456789abcdef0123456789abcdef", mode);
            match load(&file.0) {
                Err(KeyFileError::Permissions { path, mode: found }) => {
                    assert_eq!(path, file.0);
                    assert_eq!(found, mode);
                }
                other => panic!("mode {mode:o}: {other:?}"),
            }
        }
    }

    #[test]
    fn errors_name_the_path_and_the_problem() {
        let file = TempFile::new(b"0123456789abcdef", 0o644);
        let path = file.0.display();
        assert_eq!(
            load(&file.0).expect_err("refused").to_string(),
            format!(
                "heartbeat key file {path}: mode 0644, must not be accessible by group or \
                 others (chmod 600)"
            )
        );
        let file = TempFile::new(b"short\n", 0o600);
        let path = file.0.display();
        assert_eq!(
            load(&file.0).expect_err("refused").to_string(),
            format!("heartbeat key file {path}: 5 bytes of key, at least 16 are required")
        );
        let missing = file.0.with_extension("missing");
        let error = load(&missing).expect_err("no such file");
        assert!(matches!(error, KeyFileError::Read { ref path, .. } if *path == missing));
        assert!(
            error.to_string().starts_with(&format!(
                "heartbeat key file {}: cannot read: ",
                missing.display()
            )),
            "{error}"
        );
    }
}
