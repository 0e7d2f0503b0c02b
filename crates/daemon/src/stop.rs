//! Stopping: Kubernetes and `supervise` send SIGTERM, a terminal SIGINT;
//! both mean "finish cleanly".

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};

/// Installs the SIGTERM and SIGINT handlers now (a signal that arrives from
/// here on is not lost) and returns a future that resolves with the signal's
/// name when the first one comes. Call it inside a Tokio runtime with signals
/// enabled, and keep (pin) the future across loop iterations.
pub fn requested() -> std::io::Result<impl Future<Output = &'static str>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[tokio::test]
    async fn resolves_on_sigterm() {
        let stop = super::requested().unwrap();
        // Our own process: the handler installed above now owns SIGTERM.
        std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), stop).await;
        assert_eq!(got.unwrap(), "SIGTERM");
    }
}
