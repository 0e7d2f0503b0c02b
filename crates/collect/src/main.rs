use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

/// Telegraf-like metrics agent: gathers this container's and its services'
/// figures and writes them to InfluxDB.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The TOML config.
    #[arg(long, default_value = "/etc/collect.toml")]
    config: PathBuf,
    /// Check the config, print what would run, and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> anyhow::Result<()> {
    daemon::log::init("info");
    let args = Args::parse();
    let config = collect::Config::load(&args.config)?;
    if args.check_config {
        println!("{}: config OK", args.config.display());
        return Ok(());
    }
    // One thread is plenty for a few requests every interval, and keeps
    // the footprint small.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let agent = tokio::spawn(collect::run(config, stop_rx));
        let signal = daemon::stop::requested()
            .context("install the SIGTERM/SIGINT handlers")?
            .await;
        tracing::info!(signal, "stopping: flushing what InfluxDB has not taken yet");
        let _ = stop_tx.send(true);
        agent.await.context("agent task")?
    })
}
