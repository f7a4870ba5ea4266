//! The `drbd-emu` binary's entry point: dispatch on argv\[0\]'s basename to `drbdadm`,
//! `drbdsetup` (send the parsed [`Call`] to the node's serve process and print its
//! replies) or `drbd-emu` (`serve [NODE]`).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
};

use super::{
    cli::{self, Call, Parsed},
    config::{NODE_ENV, NodeDir, node_from_argv0},
    render::Tool,
    serve,
    wire::Reply,
};

/// Runs the binary with `argv`; returns the exit code.
pub fn main(argv: &[String]) -> i32 {
    let argv0 = argv.first().map_or("drbd-emu", String::as_str);
    let name = Path::new(argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(argv0);
    let args = argv.get(1..).unwrap_or_default();
    let tool = match name {
        "drbdadm" => Tool::Drbdadm,
        "drbdsetup" => Tool::Drbdsetup,
        _ => return emu(argv0, args),
    };
    let Some(node) = find_node(argv0) else {
        eprintln!("drbd-emu: cannot tell the node directory from `{argv0}` (set {NODE_ENV})");
        return 20;
    };
    let config = match serve::load_config(&node) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("drbd-emu: {e}");
            return 20;
        }
    };
    match cli::parse(tool, args, &config.resource) {
        Ok(Parsed::ShDev) => {
            println!("{}", node.device().display());
            0
        }
        Ok(Parsed::Version) => {
            print!("{}", cli::VERSION);
            0
        }
        Ok(Parsed::Call(call)) => ask(&node, &call),
        Err(failure) => {
            print!("{}", failure.stdout);
            eprint!("{}", failure.stderr);
            failure.exit
        }
    }
}

fn find_node(argv0: &str) -> Option<NodeDir> {
    let env_node = std::env::var(NODE_ENV).ok();
    let path_var = std::env::var("PATH").ok();
    node_from_argv0(
        argv0,
        env_node.as_deref(),
        path_var.as_deref(),
        Path::exists,
    )
    .map(NodeDir::new)
}

/// `drbd-emu serve [NODE]`.
fn emu(argv0: &str, args: &[String]) -> i32 {
    let node = match args {
        [command] if command == "serve" => find_node(argv0),
        [command, node] if command == "serve" => Some(NodeDir::new(PathBuf::from(node))),
        _ => {
            eprintln!(
                "usage: drbd-emu serve [NODE]  (run as drbdadm or drbdsetup through a symlink for the commands)"
            );
            return 20;
        }
    };
    let Some(node) = node else {
        eprintln!(
            "drbd-emu: cannot tell the node directory from `{argv0}` (pass it: drbd-emu serve NODE)"
        );
        return 20;
    };
    match serve::run(node) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("drbd-emu serve: {e}");
            1
        }
    }
}

/// Sends `call` to the node's serve process and relays its replies.
fn ask(node: &NodeDir, call: &Call) -> i32 {
    let socket = node.socket();
    let stream = match UnixStream::connect(&socket) {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!(
                "drbd-emu: cannot reach the emulated DRBD module at {} (is `drbd-emu serve` running?): {e}",
                socket.display()
            );
            return 20;
        }
    };
    let mut request = serde_json::to_string(call).unwrap_or_default();
    request.push('\n');
    if let Err(e) = (&stream).write_all(request.as_bytes()) {
        eprintln!("drbd-emu: sending to {}: {e}", socket.display());
        return 20;
    }
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Reply>(&line) {
            Ok(Reply::Stdout(text)) => {
                let mut out = std::io::stdout().lock();
                if out
                    .write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return 0;
                }
            }
            Ok(Reply::Stderr(text)) => eprint!("{text}"),
            Ok(Reply::Exit(code)) => return code,
            Err(e) => {
                eprintln!("drbd-emu: bad reply `{line}`: {e}");
                return 20;
            }
        }
    }
    0
}
