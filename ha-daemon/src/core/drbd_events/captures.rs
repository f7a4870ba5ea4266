//! The real DRBD 8.4.11 captures in `ha-daemon/testdata/drbd-8.4.11/` (test only).

/// One capture: the command's exit code and its two output streams.
pub(crate) struct Capture {
    /// The file name, for assertion messages.
    pub(crate) name: &'static str,
    /// `# exit code: N`, when the header has one.
    pub(crate) exit_code: Option<i32>,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

macro_rules! capture {
    ($file:literal) => {
        $crate::core::drbd_events::captures::Capture::parse(
            $file,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/testdata/drbd-8.4.11/",
                $file
            )),
        )
    };
}
pub(crate) use capture;

impl Capture {
    /// Splits a capture file into its header, stdout and stderr sections.
    pub(crate) fn parse(name: &'static str, text: &str) -> Self {
        let mut exit_code = None;
        let mut stdout = String::new();
        let mut stderr = String::new();
        let mut section = 0;
        for line in text.lines() {
            match line {
                "# ----- stdout -----" => section = 1,
                "# ----- stderr -----" => section = 2,
                _ if section == 0 => {
                    if let Some(code) = line.strip_prefix("# exit code: ") {
                        exit_code = code.trim().parse().ok();
                    }
                }
                _ => {
                    let out = if section == 1 {
                        &mut stdout
                    } else {
                        &mut stderr
                    };
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        assert!(section == 2, "{name}: no stdout/stderr sections");
        Capture {
            name,
            exit_code,
            stdout,
            stderr,
        }
    }
}

/// Every `drbdsetup events2` capture.
pub(crate) fn events2() -> Vec<Capture> {
    vec![
        capture!("16-vmda-events2-now.txt"),
        capture!("17-vmda-events2-now-noarg.txt"),
        capture!("18-vmdb-events2-now-stats.txt"),
        capture!("30-vmdb-events2-now-after-failover.txt"),
        capture!("34-vmda-events2-now-unconfigured.txt"),
        capture!("46-vmda-events2-now-link-cut.txt"),
        capture!("65-vmda-events2-stream.txt"),
        capture!("66-vmdb-events2-stream.txt"),
    ]
}
