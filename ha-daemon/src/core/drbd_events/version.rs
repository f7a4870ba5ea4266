//! The DRBD version: from `drbdadm --version` (`DRBD_KERNEL_VERSION_CODE=0x080407`,
//! `DRBDADM_VERSION_CODE=0x091600`) or the first line of `/proc/drbd`
//! (`version: 8.4.11 (api:1/proto:86-101)`).
//!
//! The kernel module's version is what matters: drbd-utils 9 drives both an 8.4 module
//! (through its `drbdadm-84`/`drbdsetup-84` helpers) and a DRBD 9 module. A kernel code
//! of 0 means the module is not loaded.

use std::fmt;

/// A DRBD version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major (8 or 9).
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Patch level.
    pub patch: u8,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The kernel module generations this daemon supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    /// DRBD 8.4 (the in-tree module of stock kernels): no `status --json`, no openers
    /// in "held open" refusals, one peer.
    V84,
    /// DRBD 9: several peers, `path` objects and extra keys in events2.
    V9,
}

impl Version {
    /// The supported generation of this kernel version, if any (8.4 or 9.x; 8.3 and
    /// older lack `events2`).
    pub fn generation(self) -> Option<Generation> {
        match (self.major, self.minor) {
            (8, 4) => Some(Generation::V84),
            (9, _) => Some(Generation::V9),
            _ => None,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        // 0xMMmmpp; every part fits its byte by construction.
        let [_, major, minor, patch] = code.to_be_bytes();
        (code != 0).then_some(Version {
            major,
            minor,
            patch,
        })
    }
}

/// What `drbdadm --version` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmVersion {
    /// The loaded kernel module's version; `None` when no module is loaded.
    pub kernel: Option<Version>,
    /// drbd-utils' version, when printed.
    pub utils: Option<Version>,
}

/// `drbdadm --version` printed no `DRBD_KERNEL_VERSION_CODE` line, or a bad one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("drbdadm --version printed no valid DRBD_KERNEL_VERSION_CODE=0x...... line: {0:?}")]
pub struct VersionError(pub String);

/// Parses `drbdadm --version` output.
pub fn parse_drbdadm_version(stdout: &str) -> Result<AdmVersion, VersionError> {
    let code = |key: &str| -> Option<Result<u32, ()>> {
        let line = stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix(key))?;
        Some(
            line.strip_prefix("0x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .filter(|code| *code <= 0xff_ffff)
                .ok_or(()),
        )
    };
    let bad = || VersionError(stdout.trim().to_owned());
    let kernel = code("DRBD_KERNEL_VERSION_CODE=")
        .ok_or_else(bad)?
        .map_err(|()| bad())?;
    let utils = match code("DRBDADM_VERSION_CODE=") {
        Some(Ok(code)) => Version::from_code(code),
        Some(Err(())) => return Err(bad()),
        None => None,
    };
    Ok(AdmVersion {
        kernel: Version::from_code(kernel),
        utils,
    })
}

/// Parses the first line of `/proc/drbd` (`version: 8.4.11 (api:1/proto:86-101)`);
/// `None` when it is not that line.
pub fn parse_proc_drbd(first_line: &str) -> Option<Version> {
    let word = first_line
        .trim()
        .strip_prefix("version:")?
        .split_whitespace()
        .next()?;
    // 9.2.11-1 style suffixes are not part of the version.
    let word = word.split('-').next()?;
    let mut parts = word.split('.').map(|part| part.parse::<u8>().ok());
    let version = Version {
        major: parts.next()??,
        minor: parts.next()??,
        patch: parts.next().unwrap_or(Some(0))?,
    };
    Some(version)
}

#[cfg(test)]
mod tests {
    use super::super::captures::capture;
    use super::*;

    const V8411: Version = Version {
        major: 8,
        minor: 4,
        patch: 11,
    };

    #[test]
    fn proc_drbd_of_the_real_captures() {
        for capture in [
            capture!("09-vmda-proc-drbd-primary.txt"),
            capture!("32-vmda-proc-drbd-unconfigured.txt"),
        ] {
            let first = capture.stdout.lines().next().unwrap();
            assert_eq!(parse_proc_drbd(first), Some(V8411), "{}", capture.name);
            assert_eq!(V8411.generation(), Some(Generation::V84));
        }
        let nine = parse_proc_drbd("version: 9.2.11-1 (api:2/proto:86-122)").unwrap();
        assert_eq!(nine.to_string(), "9.2.11");
        assert_eq!(nine.generation(), Some(Generation::V9));
        assert_eq!(parse_proc_drbd("srcversion: F73C670A7EC572DB9CF3E5B"), None);
        assert_eq!(parse_proc_drbd("version: x.y"), None);
    }

    #[test]
    fn drbdadm_version_with_84_and_9_modules_and_none() {
        let v84 = parse_drbdadm_version(
            "DRBDADM_BUILDTAG=GIT-hash:\\ c6e6\\ build\\ by\\ u@h\\,\\ 2016-05-23\n\
             DRBDADM_API_VERSION=1\n\
             DRBD_KERNEL_VERSION_CODE=0x080407\n\
             DRBDADM_VERSION_CODE=0x080906\n\
             DRBDADM_VERSION=8.9.6\n",
        )
        .unwrap();
        assert_eq!(v84.kernel.unwrap().to_string(), "8.4.7");
        assert_eq!(v84.kernel.unwrap().generation(), Some(Generation::V84));
        assert_eq!(v84.utils.unwrap().to_string(), "8.9.6");

        let v9 = parse_drbdadm_version(
            "DRBDADM_API_VERSION=2\nDRBD_KERNEL_VERSION_CODE=0x090200\n\
             DRBD_KERNEL_VERSION=9.2.0\nDRBDADM_VERSION_CODE=0x091600\n",
        )
        .unwrap();
        assert_eq!(v9.kernel.unwrap().generation(), Some(Generation::V9));
        assert_eq!(v9.utils.unwrap().to_string(), "9.22.0");

        let unloaded = parse_drbdadm_version("DRBD_KERNEL_VERSION_CODE=0x000000\n").unwrap();
        assert_eq!(unloaded.kernel, None);
        assert_eq!(unloaded.utils, None);

        let old = Version {
            major: 8,
            minor: 3,
            patch: 16,
        };
        assert_eq!(old.generation(), None);
    }

    #[test]
    fn drbdadm_version_without_or_with_a_bad_kernel_line_is_an_error() {
        for text in [
            "",
            "DRBDADM_VERSION=9.22.0\n",
            "DRBD_KERNEL_VERSION_CODE=080407\n",
            "DRBD_KERNEL_VERSION_CODE=0x1000000\n",
            "DRBD_KERNEL_VERSION_CODE=0x080407\nDRBDADM_VERSION_CODE=0xzz\n",
        ] {
            let error = parse_drbdadm_version(text).unwrap_err();
            assert!(
                error.to_string().contains("DRBD_KERNEL_VERSION_CODE"),
                "{error}"
            );
        }
    }
}
