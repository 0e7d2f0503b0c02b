//! Command line of `ftpsd`; see the library documentation.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ftpsd::{Config, Ftpsd, users};
use std::io::Read as _;
use std::num::NonZeroU32;
use std::path::PathBuf;

/// FTPS server (explicit TLS required) with per-user homes.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, default_value = ftpsd::config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Load the configuration, users file, certificate and key, then exit.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read a password from stdin (one line) and print its users-file hash.
    HashPassword {
        /// PBKDF2 iterations.
        #[arg(long, default_value_t = NonZeroU32::new(users::DEFAULT_ITERATIONS).expect("nonzero"))]
        iterations: NonZeroU32,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::HashPassword { iterations }) = cli.command {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("reading the password from stdin")?;
        // The secret-file rule: one trailing line end is not part of it.
        let password = daemon::secret::strip_line_end(&input);
        anyhow::ensure!(!password.is_empty(), "empty password on stdin");
        println!("{}", users::PasswordHash::create(password, iterations)?);
        return Ok(());
    }

    // libunftp logs every session event at info: its warnings are enough.
    daemon::log::init("info,libunftp=warn");
    let config =
        Config::load(&cli.config).with_context(|| format!("config {}", cli.config.display()))?;
    let server = Ftpsd::prepare(config).context("cannot start")?;
    if cli.check_config {
        println!("{}: configuration OK", cli.config.display());
        return Ok(());
    }
    tokio::runtime::Runtime::new()
        .context("starting the async runtime")?
        .block_on(server.run())?;
    Ok(())
}
