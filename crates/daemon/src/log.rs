//! Logging: `tracing` events as text lines.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Logs to stderr, filtered by `RUST_LOG` (else `default_filter`, e.g.
/// `"info"`). Colour only on a terminal: in the images `supervise` prefixes
/// and forwards our stderr, where escape codes would be noise.
///
/// A second call (a test that already set a subscriber) changes nothing.
pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Logs bare messages at info and above to `writer`: no time, target or
/// colour, because the writer adds its own prefix and the container runtime
/// stamps the time (`supervise`'s own lines). `RUST_LOG` is ignored here on
/// purpose: it is in the environment for the programs `supervise` starts, and
/// a filter meant for one of them must not silence the supervisor.
pub fn init_bare<W>(writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let _ = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .try_init();
}
