//! Bounded retry: a peer that is still starting is retried until a deadline,
//! then the last error is reported.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::Error;

/// How long to wait between attempts.
const PAUSE: Duration = Duration::from_millis(500);

/// What an attempt can say: try again later, or stop now.
#[derive(Debug)]
pub enum Attempt<E> {
    /// The peer is not there yet (connection refused, not ready...).
    Retry(String),
    /// Retrying cannot help (wrong password, bad request...).
    Fail(E),
}

/// Runs `attempt` until it succeeds, fails for good, or `timeout` has passed.
pub async fn retry<T, F, Fut>(what: &str, timeout: Duration, mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt<Error>>>,
{
    let started = Instant::now();
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(Attempt::Fail(e)) => return Err(e),
            Err(Attempt::Retry(last)) => {
                if started.elapsed() + PAUSE >= timeout {
                    return Err(Error::Unreachable {
                        what: what.to_string(),
                        waited: timeout,
                        last,
                    });
                }
                tracing::debug!(%what, %last, "not ready yet, retrying");
                tokio::time::sleep(PAUSE).await;
            }
        }
    }
}
