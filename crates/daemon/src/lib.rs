//! `daemon`: what every ft_services daemon does the same way.
//!
//! One rule each, so that a secret file, a duration or a log line means the
//! same thing to `supervise`, `ftpsd`, `collect` and `bootstrap`:
//!
//! - [`secret`]: a secret file is its content minus exactly one trailing line
//!   end; an empty secret is an error naming the file.
//! - [`duration`]: `"500ms"`, `"10s"`, `"5m"`, `"1h"`; the unit is required.
//! - [`log`]: `tracing` lines on stderr, filtered by `RUST_LOG`.
//! - [`stop`]: waiting for SIGTERM (Kubernetes, `supervise`) or SIGINT (a
//!   terminal).
//!
//! Small on purpose: the daemons ship as static musl binaries.

pub mod duration;
pub mod log;
pub mod secret;
pub mod stop;

pub use duration::Duration;
