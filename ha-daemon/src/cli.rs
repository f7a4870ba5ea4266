//! The command line: every subcommand and its arguments, parsed and validated here so
//! the commands receive typed values, and [`dispatch`], which runs one.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    ops::RangeInclusive,
};

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::control::{Request, client};

/// Default UDP port of heartbeats.
pub const DEFAULT_HEARTBEAT_PORT: u16 = 7400;
/// Default UDP port of echo packets (both ends).
pub const DEFAULT_ECHO_PORT: u16 = 7401;
/// Default DRBD replication port range (DRBD's customary 7788 and up).
pub const DEFAULT_REPLICATION_PORTS: &str = "7788-7799";

/// Two-node high-availability failover daemon.
#[derive(Debug, Parser)]
#[command(name = "ha-daemon", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: heartbeats, failure detection, events on stdout (JSON lines).
    Run {
        /// The node's configuration file.
        #[arg(long, short, default_value = "/etc/ha-daemon/cluster.toml")]
        config: std::path::PathBuf,
    },
    /// Remove the pinned kernel programs and maps a crashed daemon left attached (a
    /// clean shutdown removes them itself).
    Cleanup {
        /// The node's configuration file (names the pin directory).
        #[arg(long, short, default_value = "/etc/ha-daemon/cluster.toml")]
        config: std::path::PathBuf,
    },
    /// Check a configuration file and report every problem with file, line and column.
    CheckConfig {
        /// The configuration file.
        #[arg(long, short, default_value = "/etc/ha-daemon/cluster.toml")]
        config: std::path::PathBuf,
    },
    /// Attach the kernel evidence counters to links and print them live.
    Counters(CountersArgs),
    /// Ask the running daemon for its status: peer, links (dead time, loss, evidence
    /// age), evidence mode, resources.
    Status {
        /// The node's configuration file (names the control socket).
        #[arg(long, short, default_value = "/etc/ha-daemon/cluster.toml")]
        config: std::path::PathBuf,
        /// Print the JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Move the resource group to the other node (or to `--to NODE`) by a coordinated
    /// switchover; returns once the running daemon accepted it (follow it with `events`).
    /// A preflight runs first (every link up, the peer neither in standby nor in
    /// maintenance, DRBD connected and in sync, no switchover under way) and a failed
    /// check refuses it, named.
    Switchover {
        /// The node's configuration file (names the control socket).
        #[arg(long, short, default_value = "/etc/ha-daemon/cluster.toml")]
        config: std::path::PathBuf,
        /// The node that should hold the group afterwards.
        #[arg(long)]
        to: Option<u16>,
        /// Only run the preflight and print what would happen, step by step; exit 0 if
        /// the switchover would be accepted.
        #[arg(long)]
        dry_run: bool,
    },
    /// A coordinated switchover that waits for its end and prints the per-step timeline
    /// of this node (and of the peer, with `--peer-socket`): decision, each switchover
    /// step, each resource step with its duration.
    Drill {
        /// The node's configuration file (names the control socket).
        #[arg(long, short, default_value = "/etc/ha-daemon/cluster.toml")]
        config: std::path::PathBuf,
        /// The node that should hold the group afterwards.
        #[arg(long)]
        to: Option<u16>,
        /// The peer's control socket, when reachable from here (both daemons on one
        /// host, as in the lab); its times are then on the same clock.
        #[arg(long)]
        peer_socket: Option<std::path::PathBuf>,
        /// Longest wait for the switchover to end, in seconds.
        #[arg(long, default_value_t = 60)]
        timeout_s: u64,
    },
    /// Standby on (this node gives the group away and will not take it) or off.
    Standby {
        /// The node's configuration file (names the control socket).
        #[arg(long, short, default_value = "/etc/ha-daemon/cluster.toml")]
        config: std::path::PathBuf,
        /// On or off.
        state: OnOff,
    },
    /// Maintenance on (monitor only: no action at all on this node) or off (the group
    /// is surveyed again and what is found is adopted).
    Maintenance {
        /// The node's configuration file (names the control socket).
        #[arg(long, short, default_value = "/etc/ha-daemon/cluster.toml")]
        config: std::path::PathBuf,
        /// On or off.
        state: OnOff,
    },
    /// End this node's start-up wait now (the peer is known not to be starting, e.g. it
    /// is down for repair): it may then take over from the peer it never heard, still
    /// only with the witness (and after the fence, when one is configured).
    EndStartupWait {
        /// The node's configuration file (names the control socket).
        #[arg(long, short, default_value = "/etc/ha-daemon/cluster.toml")]
        config: std::path::PathBuf,
    },
    /// Follow the running daemon's events, one JSON object per line, until Ctrl-C.
    Events {
        /// The node's configuration file (names the control socket).
        #[arg(long, short, default_value = "/etc/ha-daemon/cluster.toml")]
        config: std::path::PathBuf,
    },
    /// Start, stop or survey the resource group by hand, printing the per-step timeline.
    /// For setup and recovery while the daemon is not running: nothing here checks the
    /// peer, so starting the group while the peer holds it is the operator's mistake.
    Resources {
        /// The node's configuration file (names the resources).
        #[arg(long, short, default_value = "/etc/ha-daemon/cluster.toml")]
        config: std::path::PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// What to do.
        #[command(subcommand)]
        action: ResourcesAction,
    },
}

/// `on` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

impl OnOff {
    fn on(self) -> bool {
        self == OnOff::On
    }
}

/// What `ha-daemon resources` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Subcommand)]
pub enum ResourcesAction {
    /// Monitor every resource and print what is running (changes nothing).
    Status,
    /// Start the group in order; a failed start rolls back in reverse.
    Start,
    /// Stop the group in reverse order.
    Stop,
}

/// Arguments of `ha-daemon counters`.
#[derive(Debug, clap::Args)]
pub struct CountersArgs {
    /// A link to watch, as INTERFACE=PEER[,PEER] with at most one IPv4 and one IPv6 peer
    /// address. Repeat for several links.
    #[arg(long = "link", required = true, value_parser = parse_link)]
    pub links: Vec<LinkArg>,
    /// UDP port the heartbeats are sent to.
    #[arg(long, default_value_t = DEFAULT_HEARTBEAT_PORT)]
    pub heartbeat_port: u16,
    /// UDP port of echo packets: the peer's requests to it are reflected in the kernel.
    #[arg(long, default_value_t = DEFAULT_ECHO_PORT)]
    pub echo_port: u16,
    /// This node's id (stamped into the echo replies this kernel reflects).
    #[arg(long, default_value_t = 1)]
    pub node_id: u16,
    /// The peer's node id (only its echo requests are reflected).
    #[arg(long, default_value_t = 2)]
    pub peer_node_id: u16,
    /// DRBD replication TCP ports, FIRST-LAST (or a single port).
    #[arg(long, default_value = DEFAULT_REPLICATION_PORTS, value_parser = parse_port_range)]
    pub replication_ports: RangeInclusive<u16>,
    /// Print the counters every this many milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub interval_ms: u64,
    /// Report evidence that ends at least this many milliseconds of silence.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub silence_ms: u64,
    /// Stop after printing this many times (default: until Ctrl-C).
    #[arg(long)]
    pub count: Option<u64>,
}

/// One `--link` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkArg {
    /// Interface name.
    pub interface: String,
    /// Peer IPv4 address on this link.
    pub peer_ipv4: Option<Ipv4Addr>,
    /// Peer IPv6 address on this link.
    pub peer_ipv6: Option<Ipv6Addr>,
}

/// Parses `INTERFACE=PEER[,PEER]`.
pub fn parse_link(arg: &str) -> Result<LinkArg, String> {
    let (interface, peers) = arg
        .split_once('=')
        .ok_or_else(|| format!("`{arg}`: expected INTERFACE=PEER[,PEER]"))?;
    if interface.is_empty() || interface.len() > 15 || interface.contains(['/', ' ']) {
        return Err(format!("`{interface}` is not a valid interface name"));
    }
    let mut link = LinkArg {
        interface: interface.to_owned(),
        peer_ipv4: None,
        peer_ipv6: None,
    };
    for peer in peers.split(',') {
        let addr: IpAddr = peer
            .parse()
            .map_err(|_| format!("`{peer}` is not an IP address (link {interface})"))?;
        let duplicate = match addr {
            IpAddr::V4(v4) => link.peer_ipv4.replace(v4).is_some(),
            IpAddr::V6(v6) => link.peer_ipv6.replace(v6).is_some(),
        };
        if duplicate {
            return Err(format!(
                "link {interface}: more than one peer address of the same family"
            ));
        }
    }
    Ok(link)
}

/// Parses `FIRST-LAST` or `PORT`.
pub fn parse_port_range(arg: &str) -> Result<RangeInclusive<u16>, String> {
    let port = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{s}` is not a port number (1-65535)"))
    };
    let (first, last) = match arg.split_once('-') {
        Some((first, last)) => (port(first)?, port(last)?),
        None => (port(arg)?, port(arg)?),
    };
    if first > last {
        return Err(format!("port range `{arg}` is empty (first > last)"));
    }
    Ok(first..=last)
}

/// Runs a subcommand; the error is the message to print.
pub async fn dispatch(command: Command) -> Result<(), String> {
    let load = |path: &std::path::Path| Config::load(path).map_err(|e| e.to_string());
    match command {
        Command::Run { config } => crate::daemon::run(&config).await.map_err(|e| e.to_string()),
        Command::Cleanup { config } => {
            let dir = load(&config)?.bpf_pin_directory;
            crate::io::bpf_pins::remove(&dir)
                .map(|()| println!("removed {}", dir.display()))
                .map_err(|e| format!("{}: {e}", dir.display()))
        }
        Command::CheckConfig { config } => {
            load(&config).map(|_| println!("{}: ok", config.display()))
        }
        Command::Counters(args) => crate::counters::run(args).await.map_err(|e| e.to_string()),
        Command::Status { config, json } => {
            client::status(&load(&config)?.control_socket, json).await
        }
        Command::Events { config } => client::events(&load(&config)?.control_socket).await,
        Command::Switchover {
            config,
            to,
            dry_run,
        } => {
            let socket = load(&config)?.control_socket;
            client::switchover(&socket, to, dry_run).await?;
            if !dry_run {
                println!("switchover requested");
            }
            Ok(())
        }
        Command::Drill {
            config,
            to,
            peer_socket,
            timeout_s,
        } => {
            let config = load(&config)?;
            client::drill(
                &config.control_socket,
                peer_socket.as_deref(),
                (config.node_id, config.peer_node_id),
                to,
                std::time::Duration::from_secs(timeout_s),
            )
            .await
        }
        Command::Standby { config, state } => {
            let socket = load(&config)?.control_socket;
            client::command(&socket, Request::Standby { on: state.on() }).await?;
            println!("standby {}", if state.on() { "on" } else { "off" });
            Ok(())
        }
        Command::Maintenance { config, state } => {
            let socket = load(&config)?.control_socket;
            client::command(&socket, Request::Maintenance { on: state.on() }).await?;
            println!("maintenance {}", if state.on() { "on" } else { "off" });
            Ok(())
        }
        Command::EndStartupWait { config } => {
            let socket = load(&config)?.control_socket;
            client::command(&socket, Request::EndStartupWait {}).await?;
            println!("start-up wait ended");
            Ok(())
        }
        Command::Resources {
            config,
            json,
            action,
        } => crate::operate::run(&config, action, json).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_with_both_families() {
        let link = parse_link("veth0=192.0.2.2,2001:db8::2").unwrap();
        assert_eq!(link.interface, "veth0");
        assert_eq!(link.peer_ipv4, Some(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(link.peer_ipv6, Some("2001:db8::2".parse().unwrap()));
    }

    #[test]
    fn link_errors_name_the_problem() {
        assert!(parse_link("veth0").unwrap_err().contains("INTERFACE=PEER"));
        assert!(
            parse_link("veth0=nope")
                .unwrap_err()
                .contains("`nope` is not an IP")
        );
        assert!(
            parse_link("veth0=192.0.2.1,192.0.2.2")
                .unwrap_err()
                .contains("more than one")
        );
        assert!(
            parse_link("=192.0.2.1")
                .unwrap_err()
                .contains("interface name")
        );
        assert!(
            parse_link("a-very-long-interface-name=192.0.2.1")
                .unwrap_err()
                .contains("interface name")
        );
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("7788-7799").unwrap(), 7788..=7799);
        assert_eq!(parse_port_range("7788").unwrap(), 7788..=7788);
        assert!(parse_port_range("7799-7788").unwrap_err().contains("empty"));
        assert!(parse_port_range("0").unwrap_err().contains("not a port"));
        assert!(
            parse_port_range("70000")
                .unwrap_err()
                .contains("not a port")
        );
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
