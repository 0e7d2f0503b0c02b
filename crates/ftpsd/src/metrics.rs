//! Prometheus metrics: libunftp's own `ftp_*` series (sessions, commands,
//! replies, bytes read/written by the back end, transfers) plus ftpsd's
//! `ftpsd_*` series (logins by result, lockouts, password checks run, shared
//! and queued, active and refused sessions, file bytes sent and received on
//! data connections),
//! all served as text at `GET /metrics`.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use std::net::SocketAddr;

/// ftpsd's own series; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    logins: IntCounterVec,
    lockouts: IntCounter,
    checks_queued: IntCounter,
    checks_run: IntCounter,
    checks_shared: IntCounter,
    file_bytes: IntCounterVec,
    sessions_active: IntGauge,
    sessions_refused: IntCounter,
}

impl Metrics {
    /// Registers the series in the default registry, which libunftp uses too.
    pub fn register() -> Result<Self, prometheus::Error> {
        Self::register_in(prometheus::default_registry())
    }

    /// The series in a registry of their own.
    pub fn for_tests() -> Self {
        Self::register_in(&Registry::new()).expect("fresh registry")
    }

    fn register_in(registry: &Registry) -> Result<Self, prometheus::Error> {
        let logins = IntCounterVec::new(
            Opts::new(
                "ftpsd_logins_total",
                "Login attempts by result (ok, failed, locked_out).",
            ),
            &["result"],
        )?;
        let lockouts = IntCounter::new(
            "ftpsd_lockouts_total",
            "Accounts or client addresses locked out after repeated login failures.",
        )?;
        let checks_queued = IntCounter::new(
            "ftpsd_password_checks_queued_total",
            "Password checks that waited because max_concurrent_checks were running.",
        )?;
        let checks_run = IntCounter::new(
            "ftpsd_password_checks_total",
            "PBKDF2 password verifications run.",
        )?;
        let checks_shared = IntCounter::new(
            "ftpsd_password_checks_shared_total",
            "Logins that took the verdict of a check of the same name and password \
             already under way instead of running their own.",
        )?;
        let file_bytes = IntCounterVec::new(
            Opts::new(
                "ftpsd_file_bytes_total",
                "File bytes of RETR (sent) and STOR/APPE (received) moved between the \
                 file and the client's data connection. libunftp's ftp_sent_bytes and \
                 ftp_received_bytes count listings only: file data does not pass \
                 through libunftp.",
            ),
            &["direction"],
        )?;
        let sessions_active = IntGauge::new(
            "ftpsd_sessions_active",
            "Control connections being served now.",
        )?;
        let sessions_refused = IntCounter::new(
            "ftpsd_sessions_refused_total",
            "Connections closed with 421: a login over max_sessions, or the oldest \
             connection not logged in when max_unauthenticated was reached.",
        )?;
        registry.register(Box::new(logins.clone()))?;
        registry.register(Box::new(lockouts.clone()))?;
        registry.register(Box::new(checks_queued.clone()))?;
        registry.register(Box::new(checks_run.clone()))?;
        registry.register(Box::new(checks_shared.clone()))?;
        registry.register(Box::new(file_bytes.clone()))?;
        registry.register(Box::new(sessions_active.clone()))?;
        registry.register(Box::new(sessions_refused.clone()))?;
        for result in ["ok", "failed", "locked_out"] {
            logins.with_label_values(&[result]);
        }
        for direction in ["sent", "received"] {
            file_bytes.with_label_values(&[direction]);
        }
        Ok(Self {
            logins,
            lockouts,
            checks_queued,
            checks_run,
            checks_shared,
            file_bytes,
            sessions_active,
            sessions_refused,
        })
    }

    pub fn login(&self, result: &str) {
        self.logins.with_label_values(&[result]).inc();
    }

    pub fn lockout(&self) {
        self.lockouts.inc();
    }

    pub fn check_queued(&self) {
        self.checks_queued.inc();
    }

    pub fn check_run(&self) {
        self.checks_run.inc();
    }

    pub fn check_shared(&self) {
        self.checks_shared.inc();
    }

    pub fn checks_run(&self) -> u64 {
        self.checks_run.get()
    }

    /// File bytes sent to (`true`) or received from a client's data connection.
    pub fn file_bytes(&self, sent: bool, bytes: u64) {
        self.file_bytes
            .with_label_values(&[if sent { "sent" } else { "received" }])
            .inc_by(bytes);
    }

    pub fn session_started(&self) {
        self.sessions_active.inc();
    }

    pub fn session_ended(&self) {
        self.sessions_active.dec();
    }

    pub fn session_refused(&self) {
        self.sessions_refused.inc();
    }
}

/// The text exposition of every registered series.
pub fn render() -> String {
    let mut buffer = Vec::new();
    // Encoding into a Vec cannot fail for well-formed series.
    if let Err(e) = TextEncoder::new().encode(&prometheus::gather(), &mut buffer) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    String::from_utf8_lossy(&buffer).into_owned()
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    use axum::{Router, http::header, response::IntoResponse, routing::get};
    async fn metrics() -> impl IntoResponse {
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            render(),
        )
    }
    let app = Router::new().route("/metrics", get(metrics));
    axum::serve(listener, app).await
}

/// Binds the metrics address (separately, so that a busy port fails at start).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
