//! `ha-daemon`: parse the command line, set up logging, run the subcommand.
use std::process::ExitCode;

use clap::Parser as _;
use ha_daemon::cli::{Cli, Command, LogFormat};
use ha_daemon::config::Config;
use ha_daemon::control::client;
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
    let result =
        match cli.command {
            Command::Run { config } => ha_daemon::daemon::run(&config)
                .await
                .map_err(|e| e.to_string()),
            Command::Cleanup { config } => Config::load(&config)
                .map_err(|e| e.to_string())
                .and_then(|config| {
                    ha_daemon::io::bpf_pins::remove(&config.bpf_pin_directory)
                        .map(|()| println!("removed {}", config.bpf_pin_directory.display()))
                        .map_err(|e| format!("{}: {e}", config.bpf_pin_directory.display()))
                }),
            Command::CheckConfig { config } => Config::load(&config)
                .map(|_| println!("{}: ok", config.display()))
                .map_err(|e| e.to_string()),
            Command::Counters(args) => ha_daemon::counters::run(args)
                .await
                .map_err(|e| e.to_string()),
            Command::Status { config, json } => match Config::load(&config) {
                Ok(config) => client::status(&config.control_socket, json).await,
                Err(error) => Err(error.to_string()),
            },
            Command::Events { config } => match Config::load(&config) {
                Ok(config) => client::events(&config.control_socket).await,
                Err(error) => Err(error.to_string()),
            },
            Command::Resources {
                config,
                json,
                action,
            } => ha_daemon::operate::run(&config, action, json).await,
        };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ha-daemon: {error}");
            ExitCode::FAILURE
        }
    }
}
