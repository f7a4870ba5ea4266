//! `drbdadm` / `drbdsetup` command lines -> [`Call`]s for the emulated module. Pure.
//!
//! Supported: `drbdadm create-md|up|down|primary|secondary|role|cstate|dstate|status|
//! outdate|sh-dev RES|all`, `drbdadm -- --clear-bitmap new-current-uuid RES`,
//! `drbdsetup events2 [--now] [--timestamps] [--statistics] [RES|all]`,
//! `drbdsetup status [RES|all] [--verbose] [--statistics]`, `drbdadm|drbdsetup
//! --version`. Anything else fails with exit code 20 and a message naming what is not
//! supported; `drbdsetup status --json` fails the way 8.4 does (capture 15).

use serde::{Deserialize, Serialize};

use super::render::{Failure, Tool};

/// What the module is asked to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Write fresh metadata (`create-md`).
    CreateMd,
    /// Attach and connect.
    Up,
    /// Disconnect and detach.
    Down,
    /// Promote.
    Primary,
    /// Demote.
    Secondary,
    /// `role`.
    Role,
    /// `cstate`.
    Cstate,
    /// `dstate`.
    Dstate,
    /// Mark the own disk Outdated.
    Outdate,
    /// `new-current-uuid --clear-bitmap`.
    ClearBitmap,
    /// `status`.
    Status {
        /// `--verbose`.
        verbose: bool,
        /// `--statistics`.
        statistics: bool,
    },
    /// `events2`.
    Events2 {
        /// `--now`: dump and exit.
        now: bool,
        /// `--timestamps`.
        timestamps: bool,
        /// `--statistics`.
        statistics: bool,
        /// The resource filter matched (false: print no objects).
        matches: bool,
    },
}

impl Request {
    /// The drbdadm subcommand name (used in refusal messages).
    pub fn command(&self) -> &'static str {
        match self {
            Self::CreateMd => "create-md",
            Self::Up => "up",
            Self::Down => "down",
            Self::Primary => "primary",
            Self::Secondary => "secondary",
            Self::Role => "role",
            Self::Cstate => "cstate",
            Self::Dstate => "dstate",
            Self::Outdate => "outdate",
            Self::ClearBitmap => "new-current-uuid",
            Self::Status { .. } => "status",
            Self::Events2 { .. } => "events2",
        }
    }
}

/// A request and the tool it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// drbdadm or drbdsetup.
    pub tool: Tool,
    /// What to do.
    pub request: Request,
}

/// What a command line means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Ask the module.
    Call(Call),
    /// Answered without the module: print the device path (`drbdadm sh-dev`).
    ShDev,
    /// Answered without the module: `--version` ([`VERSION`]).
    Version,
}

/// `drbdadm --version` / `drbdsetup --version` of drbd-utils 9.22 with the 8.4.11 module
/// (the keys the drbd agent reads to pick the 8.4 state source).
pub const VERSION: &str = "DRBDADM_API_VERSION=1\nDRBD_KERNEL_VERSION_CODE=0x08040b\n\
DRBD_KERNEL_VERSION=8.4.11\nDRBDADM_VERSION_CODE=0x091600\nDRBDADM_VERSION=9.22.0\n";

/// Parses `args` (without argv\[0\]) for `tool`, on a node whose resource is `resource`.
pub fn parse(tool: Tool, args: &[String], resource: &str) -> Result<Parsed, Failure> {
    if args.first().is_some_and(|a| a == "--version") {
        return Ok(Parsed::Version);
    }
    let (flags, words): (Vec<&str>, Vec<&str>) = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--")
        .partition(|a| a.starts_with('-'));
    let Some((&command, rest)) = words.split_first() else {
        return Err(unsupported(tool, "(no command)"));
    };
    match tool {
        Tool::Drbdadm => parse_drbdadm(command, rest, &flags, resource),
        Tool::Drbdsetup => parse_drbdsetup(command, rest, &flags, resource),
    }
}

fn parse_drbdadm(
    command: &str,
    rest: &[&str],
    flags: &[&str],
    resource: &str,
) -> Result<Parsed, Failure> {
    let allowed: &[&str] = match command {
        "create-md" => &["--force"],
        "new-current-uuid" => &["--clear-bitmap"],
        _ => &[],
    };
    if let Some(flag) = flags.iter().find(|f| !allowed.contains(f)) {
        return Err(unsupported(Tool::Drbdadm, &format!("{command} {flag}")));
    }
    let request = match command {
        "create-md" => Request::CreateMd,
        "up" => Request::Up,
        "down" => Request::Down,
        "primary" => Request::Primary,
        "secondary" => Request::Secondary,
        "role" => Request::Role,
        "cstate" => Request::Cstate,
        "dstate" => Request::Dstate,
        "outdate" => Request::Outdate,
        "status" => Request::Status {
            verbose: false,
            statistics: false,
        },
        "new-current-uuid" if flags.contains(&"--clear-bitmap") => Request::ClearBitmap,
        "new-current-uuid" => {
            return Err(unsupported(
                Tool::Drbdadm,
                "new-current-uuid without --clear-bitmap",
            ));
        }
        "sh-dev" => {
            check_resource(rest, resource, command != "status")?;
            return Ok(Parsed::ShDev);
        }
        other => return Err(unsupported(Tool::Drbdadm, other)),
    };
    check_resource(rest, resource, command != "status")?;
    Ok(Parsed::Call(Call {
        tool: Tool::Drbdadm,
        request,
    }))
}

fn check_resource(rest: &[&str], resource: &str, required: bool) -> Result<(), Failure> {
    match rest {
        [] if !required => Ok(()),
        [] => Err(Failure::message(
            20,
            "drbd-emu: drbdadm needs a resource name (or `all`)\n",
        )),
        [name] if *name == resource || *name == "all" => Ok(()),
        [name] => Err(Failure::message(
            10,
            format!("'{name}' not defined in your config (for this host).\n"),
        )),
        [_, extra, ..] => Err(unsupported(
            Tool::Drbdadm,
            &format!("more than one resource ({extra})"),
        )),
    }
}

fn parse_drbdsetup(
    command: &str,
    rest: &[&str],
    flags: &[&str],
    resource: &str,
) -> Result<Parsed, Failure> {
    let matches = match rest {
        [] => true,
        [name] => *name == resource || *name == "all",
        [_, extra, ..] => return Err(unsupported(Tool::Drbdsetup, &format!("{command} {extra}"))),
    };
    let allowed: &[&str] = match command {
        "events2" => &["--now", "--timestamps", "--statistics"],
        "status" if flags.contains(&"--json") => {
            return Err(Failure {
                exit: 20,
                stdout: DRBDSETUP_USAGE.to_owned(),
                stderr: "status: unrecognized option '--json'\n".to_owned(),
            });
        }
        "status" => &["--verbose", "--statistics"],
        other => return Err(unsupported(Tool::Drbdsetup, other)),
    };
    if let Some(flag) = flags.iter().find(|f| !allowed.contains(f)) {
        return Err(unsupported(Tool::Drbdsetup, &format!("{command} {flag}")));
    }
    let request = if command == "events2" {
        Request::Events2 {
            now: flags.contains(&"--now"),
            timestamps: flags.contains(&"--timestamps"),
            statistics: flags.contains(&"--statistics"),
            matches,
        }
    } else if !matches {
        return Err(Failure::message(
            10,
            format!("{}: No such resource\n", rest.join(" ")),
        ));
    } else {
        Request::Status {
            verbose: flags.contains(&"--verbose"),
            statistics: flags.contains(&"--statistics"),
        }
    };
    Ok(Parsed::Call(Call {
        tool: Tool::Drbdsetup,
        request,
    }))
}

fn unsupported(tool: Tool, what: &str) -> Failure {
    let tool = match tool {
        Tool::Drbdadm => "drbdadm",
        Tool::Drbdsetup => "drbdsetup",
    };
    Failure::message(
        20,
        format!("drbd-emu: `{tool} {what}` is not supported by the DRBD emulator\n"),
    )
}

/// drbdsetup 8.4's usage text (printed for unknown options, capture 15).
const DRBDSETUP_USAGE: &str = "
USAGE: drbdsetup command device arguments options

Device is usually /dev/drbdX or /dev/drbd/X.

Commands are:
    primary             secondary           attach              
    disk-options        detach              connect             
    net-options         disconnect          resize              
    resource-options    new-current-uuid    invalidate          
    invalidate-remote   pause-sync          resume-sync         
    suspend-io          resume-io           outdate             
    verify              down                state               
    role                sh-status           cstate              
    dstate              show-gi             get-gi              
    show                status              check-resize        
    events              events2             wait-connect        
    wait-sync           new-resource        new-minor           
    del-minor           del-resource        

To get more details about a command issue 'drbdsetup help cmd'.

";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbd_emu::render::tests::{capture, testdata};

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn call(tool: Tool, line: &str) -> Request {
        match parse(tool, &args(line), "r0") {
            Ok(Parsed::Call(call)) => call.request,
            other => panic!("`{line}`: {other:?}"),
        }
    }

    #[test]
    fn drbdadm_commands() {
        assert_eq!(call(Tool::Drbdadm, "primary r0"), Request::Primary);
        assert_eq!(
            call(Tool::Drbdadm, "create-md --force r0"),
            Request::CreateMd
        );
        assert_eq!(
            call(Tool::Drbdadm, "-- --clear-bitmap new-current-uuid r0"),
            Request::ClearBitmap
        );
        assert_eq!(
            call(Tool::Drbdadm, "status"),
            Request::Status {
                verbose: false,
                statistics: false
            }
        );
        assert_eq!(
            parse(Tool::Drbdadm, &args("sh-dev r0"), "r0"),
            Ok(Parsed::ShDev)
        );
    }

    #[test]
    fn refusals_name_what_is_unsupported() {
        let err = parse(Tool::Drbdadm, &args("primary --force r0"), "r0").unwrap_err();
        assert_eq!(err.exit, 20);
        assert!(
            err.stderr
                .contains("`drbdadm primary --force` is not supported"),
            "{}",
            err.stderr
        );
        let err = parse(Tool::Drbdadm, &args("invalidate r0"), "r0").unwrap_err();
        assert!(
            err.stderr.contains("`drbdadm invalidate`"),
            "{}",
            err.stderr
        );
        let err = parse(Tool::Drbdadm, &args("primary r9"), "r0").unwrap_err();
        assert_eq!(
            (err.exit, err.stderr.as_str()),
            (10, "'r9' not defined in your config (for this host).\n")
        );
    }

    #[test]
    fn drbdsetup_commands() {
        assert_eq!(
            call(
                Tool::Drbdsetup,
                "events2 --now --statistics --timestamps all"
            ),
            Request::Events2 {
                now: true,
                timestamps: true,
                statistics: true,
                matches: true
            }
        );
        assert_eq!(
            call(Tool::Drbdsetup, "status --verbose --statistics"),
            Request::Status {
                verbose: true,
                statistics: true
            }
        );
        let err = parse(Tool::Drbdsetup, &args("status --json"), "r0").unwrap_err();
        let (out, stderr) = capture(testdata!("15-vmda-status-json.txt"));
        assert_eq!((err.exit, err.stdout, err.stderr), (20, out, stderr));
    }
}
