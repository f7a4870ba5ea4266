//! The persisted epoch: the counter that rises at every change of primary, kept in one
//! small file so that a restarted node never reuses an epoch it already claimed.
//!
//! Invariant: [`store`] returns only once the new value is durable: it writes a
//! temporary file in the same directory, fsyncs it, renames it over the old file and
//! fsyncs the directory. A crash at any point leaves either the old value or the new
//! one, never a torn or empty file. The file holds the decimal number and a newline.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Why the epoch could not be read or stored.
#[derive(Debug, thiserror::Error)]
pub enum EpochFileError {
    /// Reading, writing, syncing or renaming failed.
    #[error("epoch file {path}: {what}: {source}")]
    Io {
        /// The file (or its temporary sibling).
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a number.
    #[error("epoch file {path}: {content:?} is not an epoch (a decimal number)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it holds (at most 64 characters).
        content: String,
    },
}

/// Reads the stored epoch; `0` when the file does not exist yet (a fresh node).
pub fn load(path: &Path) -> Result<u64, EpochFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(EpochFileError::Io {
                path: path.to_owned(),
                what: "reading",
                source,
            });
        }
    };
    text.trim().parse().map_err(|_| EpochFileError::Corrupt {
        path: path.to_owned(),
        content: text.chars().take(64).collect(),
    })
}

/// Stores `epoch` durably (see the module doc).
pub fn store(path: &Path, epoch: u64) -> Result<(), EpochFileError> {
    let io = |path: &Path, what| {
        let path = path.to_owned();
        move |source| EpochFileError::Io { path, what, source }
    };
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let temporary = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io(&temporary, "creating"))?;
    file.write_all(format!("{epoch}\n").as_bytes())
        .map_err(io(&temporary, "writing"))?;
    file.sync_all().map_err(io(&temporary, "syncing"))?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(io(path, "renaming into place"))?;
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io(dir, "syncing its directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ha-epoch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_missing_file_is_epoch_zero_and_stores_read_back() {
        let dir = scratch("roundtrip");
        let path = dir.join("epoch");
        assert_eq!(load(&path).unwrap(), 0);
        store(&path, 41).unwrap();
        store(&path, 42).unwrap();
        assert_eq!(load(&path).unwrap(), 42);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "42\n");
        assert!(
            !dir.join("epoch.tmp").exists(),
            "the temporary file is renamed away"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it_and_its_content() {
        let dir = scratch("corrupt");
        let path = dir.join("epoch");
        std::fs::write(&path, "forty-two\n").unwrap();
        let error = load(&path).unwrap_err().to_string();
        assert!(
            error.contains("epoch") && error.contains("forty-two"),
            "{error}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_store_into_a_missing_directory_fails_and_names_the_file() {
        let error = store(Path::new("/nonexistent/ha/epoch"), 1)
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/ha/epoch.tmp"), "{error}");
    }
}
