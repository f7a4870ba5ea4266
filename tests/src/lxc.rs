//! LXC containers and the users owning them, created by a test and removed on drop.
//!
//! - [`TestUser`]: a system user (`hatu<pid>`) with its home where the test says (on the
//!   test's filesystem) and the subordinate uid/gid range `useradd` gives it; `userdel`
//!   on drop. Users left by a killed test process are removed by the next
//!   [`TestUser::new`].
//! - [`Container`]: a busybox container made with `lxc-create -t busybox`, either with no
//!   network (`lxc.net.0.type = empty`, so no bridge is needed), privileged or owned by a
//!   [`TestUser`] (unprivileged, with `lxc.idmap` from its subordinate ranges), or
//!   privileged with the network config a test gives, its `lxc-*` commands run inside a
//!   test's network namespace ([`Container::busybox_in`]). Its init does not run the
//!   template's `udhcpc`, which would flush static addresses. On drop it is killed
//!   (`lxc-stop -k`) and destroyed, as its owner, in its namespace.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::unistd::{Gid, Uid, User, chown};

use crate::netns::NetNs;
use crate::run;

const USER_PREFIX: &str = "hatu";

/// A user created for one test, deleted on drop.
#[derive(Debug)]
pub struct TestUser {
    name: String,
    home: PathBuf,
    uid: Uid,
    gid: Gid,
}

impl TestUser {
    /// Creates the user with `home` (created, owned by the user) as its home directory.
    pub fn new(home: &Path) -> Self {
        sweep_stale_users();
        let name = format!("{USER_PREFIX}{}", std::process::id());
        let home_str = home.to_str().expect("UTF-8 home");
        run(
            "useradd",
            &[
                "--no-create-home",
                "--user-group",
                "--home-dir",
                home_str,
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ],
        );
        let user = User::from_name(&name)
            .expect("read the password database")
            .expect("the user just created exists");
        let test_user = Self {
            name,
            home: home.to_owned(),
            uid: user.uid,
            gid: user.gid,
        };
        std::fs::create_dir_all(home).expect("create the home directory");
        test_user.give(home);
        test_user
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Makes the user own `path`.
    pub fn give(&self, path: &Path) {
        chown(path, Some(self.uid), Some(self.gid)).expect("chown to the test user");
    }

    /// `lxc.idmap` lines mapping container ids 0.. onto the user's subordinate ranges.
    pub fn idmap(&self) -> String {
        let (uid_start, uid_count) = subordinate("/etc/subuid", &self.name);
        let (gid_start, gid_count) = subordinate("/etc/subgid", &self.name);
        format!(
            "lxc.idmap = u 0 {uid_start} {uid_count}\nlxc.idmap = g 0 {gid_start} {gid_count}\n"
        )
    }

    /// `PROGRAM` run as this user with its `HOME` (through `runuser`).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("runuser");
        command
            .args(["-u", &self.name, "--", "env"])
            .arg(format!("HOME={}", self.home.display()))
            .arg(program)
            .current_dir(&self.home);
        command
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// The first subordinate range of `user` in `/etc/subuid` or `/etc/subgid`.
fn subordinate(file: &str, user: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file}: {e}"));
    text.lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next()? == user).then_some(())?;
            Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
        })
        .unwrap_or_else(|| panic!("{file} has no range for {user} (useradd did not add one)"))
}

/// Deletes `hatu<pid>` users whose process no longer exists.
fn sweep_stale_users() {
    let Ok(passwd) = std::fs::read_to_string("/etc/passwd") else {
        return;
    };
    for name in passwd.lines().filter_map(|line| line.split(':').next()) {
        let Some(pid) = name
            .strip_prefix(USER_PREFIX)
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("userdel").arg(name).status();
        }
    }
}

/// A busybox container, killed and destroyed on drop.
#[derive(Debug)]
pub struct Container<'a> {
    name: String,
    lxcpath: PathBuf,
    owner: Option<&'a TestUser>,
    /// Where its `lxc-*` commands run: LXC's command socket is an abstract Unix socket,
    /// reachable only from the network namespace `lxc-start` ran in.
    netns: Option<&'a NetNs>,
}

impl<'a> Container<'a> {
    /// `lxc-create -t busybox -n NAME -P LXCPATH` with no network, as `owner` (with its
    /// id map: unprivileged) or as root. `lxcpath` is created (owned by `owner`).
    pub fn busybox(name: &str, lxcpath: &Path, owner: Option<&'a TestUser>) -> Self {
        let mut config = String::from("lxc.net.0.type = empty\n");
        if let Some(owner) = owner {
            config.push_str(&owner.idmap());
        }
        Self::create(name, lxcpath, owner, None, &config)
    }

    /// A privileged busybox container with `network` (`lxc.net.*` lines) as its network
    /// config, for starting inside `netns` (whose interfaces `lxc.net.N.link` names).
    /// Its commands, on drop too, run in `netns`, so drop it before the namespace.
    pub fn busybox_in(name: &str, lxcpath: &Path, netns: &'a NetNs, network: &str) -> Self {
        Self::create(name, lxcpath, None, Some(netns), network)
    }

    fn create(
        name: &str,
        lxcpath: &Path,
        owner: Option<&'a TestUser>,
        netns: Option<&'a NetNs>,
        config: &str,
    ) -> Self {
        std::fs::create_dir_all(lxcpath).expect("create lxcpath");
        if let Some(owner) = owner {
            owner.give(lxcpath);
        }
        let base = lxcpath.join(format!(".{name}-base.conf"));
        std::fs::write(&base, config).expect("write the base config");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let container = Self {
            name: name.to_owned(),
            lxcpath: lxcpath.to_owned(),
            owner,
            netns,
        };
        let status = container
            .command("lxc-create")
            .args(["-t", "busybox", "-f"])
            .arg(&base)
            .stdout(Stdio::null())
            .status()
            .expect("run lxc-create");
        assert!(
            status.success(),
            "lxc-create {name} in {} failed: {status}",
            lxcpath.display()
        );
        container.without_dhcp();
        container
    }

    /// Drops the `udhcpc` line from the template's `/etc/init.d/rcS`: with no DHCP server
    /// it would flush the interface's static addresses and retry for ever.
    fn without_dhcp(&self) {
        let rcs = self.lxcpath.join(&self.name).join("rootfs/etc/init.d/rcS");
        let script = std::fs::read_to_string(&rcs).expect("read the container's rcS");
        let kept: String = script
            .lines()
            .filter(|line| !line.contains("udhcpc"))
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(&rcs, kept).expect("write the container's rcS");
    }

    /// The pid of the container's init (as the host sees it), or `None` when stopped.
    pub fn init_pid(&self) -> Option<i32> {
        let out = self
            .command("lxc-info")
            .args(["-p", "-H"])
            .output()
            .expect("run lxc-info");
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    /// `PROGRAM -n NAME -P LXCPATH`, as the owner, in the container's namespace.
    fn command(&self, program: &str) -> Command {
        let mut command = match (self.owner, self.netns) {
            (Some(owner), _) => owner.command(program),
            (None, Some(netns)) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns.name(), program]);
                command
            }
            (None, None) => Command::new(program),
        };
        command
            .arg("-n")
            .arg(&self.name)
            .arg("-P")
            .arg(&self.lxcpath);
        command
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        for (program, args) in [("lxc-stop", &["-k"][..]), ("lxc-destroy", &[][..])] {
            let _ = self
                .command(program)
                .args(args)
                .stderr(Stdio::null())
                .status();
        }
    }
}
