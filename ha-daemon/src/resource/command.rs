//! Running a program for an agent: arguments, environment, optional user, captured output.
//!
//! Invariant: the child is killed when the future running it is dropped (the engine's
//! timeout drops it), so a timed-out `drbdadm` or `lxc-stop` never keeps running behind
//! the daemon's back. Output is captured whole; agents' programs print little.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::unistd::User;

/// A program to run, with its arguments and environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// The program, absolute or looked up in `PATH`.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Variables added to the daemon's environment.
    pub env: Vec<(OsString, OsString)>,
    /// Run as this user (uid, gid, supplementary groups dropped, `HOME` and `USER` set)
    /// instead of the daemon's.
    pub user: Option<RunAs>,
}

/// A user to run a program as, resolved from its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    /// The user's name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its home directory.
    pub home: PathBuf,
}

impl RunAs {
    /// Looks the user up in the password database.
    pub fn lookup(name: &str) -> Result<Self, String> {
        match User::from_name(name) {
            Ok(Some(user)) => Ok(RunAs {
                name: user.name,
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
                home: user.dir,
            }),
            Ok(None) => Err(format!("no user named {name:?}")),
            Err(error) => Err(format!("looking up user {name:?}: {error}")),
        }
    }
}

/// How a program ended and what it printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code, or `None` when a signal ended it.
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Outcome {
    /// True when the program exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// The program could not be run at all (not found, not executable, fork failed).
#[derive(Debug, thiserror::Error)]
#[error("cannot run {program}: {source}")]
pub struct SpawnError {
    /// The program and its arguments, as a shell would show them.
    pub program: String,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

impl Invocation {
    /// A program with arguments, no extra environment, run as the daemon's user.
    pub fn new<I, S>(program: impl Into<PathBuf>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Invocation {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            user: None,
        }
    }

    /// Runs the program to completion with no standard input and returns its outcome.
    /// Dropping the future kills the child.
    pub async fn run(&self) -> Result<Outcome, SpawnError> {
        let output = self
            .command()
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|source| self.spawn_error(source))?;
        Ok(Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Starts the program for a caller that reads its standard output as it comes (a
    /// follower such as `drbdsetup events2`); stdout is piped, stderr is inherited
    /// (the daemon's log). Dropping the [`tokio::process::Child`] kills it.
    pub fn spawn(&self) -> Result<tokio::process::Child, SpawnError> {
        self.command()
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| self.spawn_error(source))
    }

    /// The command with arguments, environment and user; stdin closed, stdout piped,
    /// killed on drop.
    fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if let Some(user) = &self.user {
            command
                .uid(user.uid)
                .gid(user.gid)
                .env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
            // Users like `nobody` have a home that does not exist; start them in `/`.
            let home_exists = user.home.is_dir();
            command.current_dir(if home_exists {
                user.home.as_path()
            } else {
                Path::new("/")
            });
        }
        command
    }

    fn spawn_error(&self, source: std::io::Error) -> SpawnError {
        SpawnError {
            program: self.to_string(),
            source,
        }
    }
}

/// Finds `program` as [`Invocation::run`] would: a path with a `/` must be an
/// executable file; a bare name is looked up in `PATH`. Changes nothing; for `validate`.
pub fn find_program(program: &Path) -> Result<PathBuf, String> {
    which::which(program).map_err(|error| format!("program {}: {error}", program.display()))
}

impl fmt::Display for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program.display())?;
        for arg in &self.args {
            write!(f, " {}", arg.to_string_lossy())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn captures_exit_code_and_both_streams() {
        let outcome = Invocation::new("sh", ["-c", "echo out; echo err >&2; exit 3"])
            .run()
            .await
            .unwrap();
        assert_eq!(outcome.code, Some(3));
        assert_eq!(outcome.stdout, "out\n");
        assert_eq!(outcome.stderr, "err\n");
        assert!(!outcome.success());
    }

    #[tokio::test]
    async fn passes_the_added_environment() {
        let mut invocation = Invocation::new("sh", ["-c", "printf %s \"$HA_TEST_VALUE\""]);
        invocation
            .env
            .push(("HA_TEST_VALUE".into(), "forty-two".into()));
        let outcome = invocation.run().await.unwrap();
        assert!(outcome.success());
        assert_eq!(outcome.stdout, "forty-two");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error_naming_it() {
        let error = Invocation::new("/nonexistent/ha-no-such-program", ["x"])
            .run()
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("/nonexistent/ha-no-such-program x"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_child() {
        let marker = std::env::temp_dir().join(format!("ha-command-kill-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let script = format!("sleep 0.3; touch {}", marker.display());
        let invocation = Invocation::new("sh", ["-c", script.as_str()]);
        let timed_out =
            tokio::time::timeout(std::time::Duration::from_millis(50), invocation.run()).await;
        assert!(timed_out.is_err());
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(!marker.exists(), "the child outlived its dropped future");
    }

    #[tokio::test]
    async fn a_spawned_child_streams_stdout_and_dies_with_its_handle() {
        use tokio::io::AsyncBufReadExt;
        let mut child = Invocation::new("sh", ["-c", "echo first; exec sleep 30"])
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("first"));
        drop(child);
        let proc = PathBuf::from(format!("/proc/{pid}/stat"));
        for _ in 0..100 {
            match std::fs::read_to_string(&proc) {
                Err(_) => return,
                Ok(stat) if stat.contains(") Z ") => return,
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
        panic!("pid {pid} outlived its dropped handle");
    }

    #[test]
    fn programs_are_found_in_path_or_by_path_and_missing_ones_named() {
        assert!(find_program(Path::new("sh")).unwrap().is_absolute());
        assert!(find_program(Path::new("/bin/sh")).is_ok());
        let error = find_program(Path::new("ha-no-such-program")).unwrap_err();
        assert!(error.contains("ha-no-such-program"), "{error}");
        let plain = std::env::temp_dir().join(format!("ha-not-executable-{}", std::process::id()));
        std::fs::write(&plain, "").unwrap();
        let result = find_program(&plain);
        std::fs::remove_file(&plain).unwrap();
        assert!(result.is_err(), "a file without x bits is not a program");
    }

    /// `nobody`'s home does not exist; the program still runs, as `nobody`, in `/`.
    #[tokio::test]
    async fn a_user_without_a_home_runs_in_the_root_directory() {
        if !nix::unistd::geteuid().is_root() {
            let why = "a_user_without_a_home_runs_in_the_root_directory: needs root";
            assert!(
                std::env::var_os("HA_REQUIRE_PRIVILEGED").is_none_or(|v| v != "1"),
                "{why}"
            );
            eprintln!("SKIPPED {why}");
            return;
        }
        let mut invocation = Invocation::new("sh", ["-c", "id -u; pwd"]);
        let nobody = RunAs::lookup("nobody").unwrap();
        assert!(!nobody.home.is_dir(), "{:?} exists here", nobody.home);
        let uid = nobody.uid;
        invocation.user = Some(nobody);
        let outcome = invocation.run().await.unwrap();
        assert!(outcome.success(), "{outcome:?}");
        assert_eq!(outcome.stdout, format!("{uid}\n/\n"));
    }

    #[test]
    fn root_is_found_and_a_missing_user_is_named() {
        assert_eq!(RunAs::lookup("root").unwrap().uid, 0);
        let error = RunAs::lookup("ha-no-such-user").unwrap_err();
        assert!(error.contains("ha-no-such-user"), "{error}");
    }
}
