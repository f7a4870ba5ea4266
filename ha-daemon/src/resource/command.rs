//! Running a program for an agent: arguments, environment, optional user, captured output.
//!
//! Invariant: the child is killed when the future running it is dropped (the engine's
//! timeout drops it), so a timed-out `drbdadm` or `lxc-stop` never keeps running behind
//! the daemon's back. Output is captured whole; agents' programs print little.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
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
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(user) = &self.user {
            command
                .uid(user.uid)
                .gid(user.gid)
                .env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name)
                .current_dir(&user.home);
        }
        let output = command.output().await.map_err(|source| SpawnError {
            program: self.to_string(),
            source,
        })?;
        Ok(Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
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

    #[test]
    fn root_is_found_and_a_missing_user_is_named() {
        assert_eq!(RunAs::lookup("root").unwrap().uid, 0);
        let error = RunAs::lookup("ha-no-such-user").unwrap_err();
        assert!(error.contains("ha-no-such-user"), "{error}");
    }
}
