//! `ha-daemon`: parse the command line, set up logging, run the subcommand.
use std::process::ExitCode;

use clap::Parser as _;
use ha_daemon::cli::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let result = ha_daemon::cli::dispatch(cli.command).await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ha-daemon: {error}");
            ExitCode::FAILURE
        }
    }
}
