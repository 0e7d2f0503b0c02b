use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// PID 1 of a container: starts, orders, watches and reaps its programs.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The config file.
    #[arg(long, env = "SUPERVISE_CONFIG", default_value = "/etc/supervise.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a config file and start nothing.
    CheckConfig {
        file: PathBuf,
        /// Also render every template in memory (needs its variables set).
        #[arg(long)]
        render: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::CheckConfig { file, render }) => {
            supervise::check_config(&file, render).map(|summary| {
                println!("{summary}");
                0
            })
        }
        None => supervise::run(&cli.config),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("supervise | error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
