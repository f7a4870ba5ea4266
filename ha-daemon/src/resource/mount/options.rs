//! Mount option words -> `mount(2)` flags and the filesystem's data string. Pure.
//!
//! Each configured word is one option (no commas inside). Words that `mount(2)` knows as
//! flags (`ro`, `nodev`, `noatime`, ...) become [`MsFlags`]; a negation (`rw`, `dev`,
//! `atime`, ...) clears what an earlier word set, so the last word wins as in `mount(8)`.
//! Every other word goes, in order, into the comma-separated data string the filesystem
//! parses (`errors=remount-ro`, `data=ordered`, ...).
//!
//! Refused: words that only `mount(8)` or fstab understand (`loop`, `noauto`, `user`,
//! `nofail`, `_netdev`, `x-*`, `comment=`...; the kernel would reject them as unknown
//! filesystem options, or silently do something else), and the words that change what a
//! mount is (`bind`, `remount`, `move`, propagation): this agent mounts a device, nothing else.

use nix::mount::MsFlags;

/// What `mount(2)` gets for a list of option words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountOptions {
    /// The flag words, folded in order.
    pub flags: MsFlags,
    /// The other words joined with commas, for the filesystem; empty when there are none.
    pub data: String,
}

impl MountOptions {
    /// True when the words ask for a read-only mount.
    pub fn read_only(&self) -> bool {
        self.flags.contains(MsFlags::MS_RDONLY)
    }
}

/// A word this agent does not accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// An empty word, or one holding a comma (each word is one option).
    #[error("mount option {0:?} is not a single option word (give each option separately)")]
    NotAWord(String),
    /// A `mount(8)`/fstab word the kernel does not understand.
    #[error("mount option {0:?} is understood by mount(8) only, not by the kernel")]
    UserspaceOnly(String),
    /// A word that would make this something other than mounting a device.
    #[error("mount option {0:?} is not supported: this agent only mounts a device")]
    NotADeviceMount(String),
}

/// The flag words: (word, flag set by it, flag cleared by it).
const FLAG_WORDS: &[(&str, MsFlags, MsFlags)] = &[
    ("ro", MsFlags::MS_RDONLY, MsFlags::empty()),
    ("rw", MsFlags::empty(), MsFlags::MS_RDONLY),
    ("nosuid", MsFlags::MS_NOSUID, MsFlags::empty()),
    ("suid", MsFlags::empty(), MsFlags::MS_NOSUID),
    ("nodev", MsFlags::MS_NODEV, MsFlags::empty()),
    ("dev", MsFlags::empty(), MsFlags::MS_NODEV),
    ("noexec", MsFlags::MS_NOEXEC, MsFlags::empty()),
    ("exec", MsFlags::empty(), MsFlags::MS_NOEXEC),
    ("sync", MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
    ("async", MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
    ("dirsync", MsFlags::MS_DIRSYNC, MsFlags::empty()),
    ("noatime", MsFlags::MS_NOATIME, MsFlags::empty()),
    ("atime", MsFlags::empty(), MsFlags::MS_NOATIME),
    ("nodiratime", MsFlags::MS_NODIRATIME, MsFlags::empty()),
    ("diratime", MsFlags::empty(), MsFlags::MS_NODIRATIME),
    ("relatime", MsFlags::MS_RELATIME, MsFlags::empty()),
    ("norelatime", MsFlags::empty(), MsFlags::MS_RELATIME),
    ("strictatime", MsFlags::MS_STRICTATIME, MsFlags::empty()),
    ("nostrictatime", MsFlags::empty(), MsFlags::MS_STRICTATIME),
    ("lazytime", MsFlags::MS_LAZYTIME, MsFlags::empty()),
    ("nolazytime", MsFlags::empty(), MsFlags::MS_LAZYTIME),
    ("silent", MsFlags::MS_SILENT, MsFlags::empty()),
    ("loud", MsFlags::empty(), MsFlags::MS_SILENT),
    ("defaults", MsFlags::empty(), MsFlags::empty()),
];

const USERSPACE_ONLY: &[&str] = &[
    "loop", "auto", "noauto", "user", "nouser", "users", "owner", "group", "nofail", "_netdev",
];

const NOT_A_DEVICE_MOUNT: &[&str] = &[
    "bind",
    "rbind",
    "remount",
    "move",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "unbindable",
    "runbindable",
];

/// Folds option words into flags and a data string, or names the first refused word.
pub fn parse_options<S: AsRef<str>>(words: &[S]) -> Result<MountOptions, OptionError> {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for word in words.iter().map(AsRef::as_ref) {
        if word.is_empty() || word.contains(',') {
            return Err(OptionError::NotAWord(word.to_owned()));
        }
        let key = word.split('=').next().unwrap_or(word);
        if USERSPACE_ONLY.contains(&key) || key.starts_with("x-") || key == "comment" {
            return Err(OptionError::UserspaceOnly(word.to_owned()));
        }
        if NOT_A_DEVICE_MOUNT.contains(&key) || key.starts_with("make-") {
            return Err(OptionError::NotADeviceMount(word.to_owned()));
        }
        match FLAG_WORDS.iter().find(|(name, _, _)| *name == word) {
            Some((_, set, clear)) => {
                flags.remove(*clear);
                flags.insert(*set);
            }
            None => data.push(word),
        }
    }
    Ok(MountOptions {
        flags,
        data: data.join(","),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_words_become_flags_and_the_rest_is_data_in_order() {
        let options =
            parse_options(&["noatime", "errors=remount-ro", "nodev", "data=ordered"]).unwrap();
        assert_eq!(options.flags, MsFlags::MS_NOATIME | MsFlags::MS_NODEV);
        assert_eq!(options.data, "errors=remount-ro,data=ordered");
        assert!(!options.read_only());
    }

    #[test]
    fn the_last_of_a_word_and_its_negation_wins() {
        assert!(parse_options(&["rw", "ro"]).unwrap().read_only());
        let options = parse_options(&["ro", "nosuid", "rw", "suid"]).unwrap();
        assert_eq!(options.flags, MsFlags::empty());
        assert!(!options.read_only());
    }

    #[test]
    fn no_words_and_defaults_mean_no_flags_and_no_data() {
        let none: [&str; 0] = [];
        assert_eq!(
            parse_options(&none).unwrap(),
            MountOptions {
                flags: MsFlags::empty(),
                data: String::new()
            }
        );
        assert_eq!(
            parse_options(&["defaults"]).unwrap().flags,
            MsFlags::empty()
        );
    }

    #[test]
    fn userspace_only_words_are_refused_by_name() {
        for word in [
            "loop",
            "noauto",
            "nofail",
            "_netdev",
            "x-systemd.automount",
            "comment=x",
        ] {
            assert_eq!(
                parse_options(&[word]),
                Err(OptionError::UserspaceOnly(word.to_owned())),
                "{word}"
            );
        }
    }

    #[test]
    fn words_that_are_not_a_device_mount_are_refused() {
        for word in ["bind", "remount", "move", "rshared", "make-private"] {
            assert_eq!(
                parse_options(&[word]),
                Err(OptionError::NotADeviceMount(word.to_owned())),
                "{word}"
            );
        }
    }

    #[test]
    fn a_comma_list_or_an_empty_word_is_not_a_word() {
        assert_eq!(
            parse_options(&["ro,noatime"]),
            Err(OptionError::NotAWord("ro,noatime".to_owned()))
        );
        assert_eq!(
            parse_options(&[""]),
            Err(OptionError::NotAWord(String::new()))
        );
    }

    #[test]
    fn the_error_names_the_word() {
        let error = parse_options(&["nofail"]).unwrap_err();
        assert!(error.to_string().contains("\"nofail\""), "{error}");
    }
}
