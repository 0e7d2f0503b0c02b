//! The TOML configuration file. Every key is optional; `Config::default()` is
//! exactly what an empty file gives (the values of the cluster's ftps pod).

use serde::Deserialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// libunftp waits 15 s for a passive data connection; ftpsd's own wait for
/// the client's connection and handshake must end before that.
const MAX_DATA_SETUP_SECONDS: u64 = 14;

/// Default location of the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ftpsd.toml";

/// Errors reading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid TOML in {path}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid value: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Control connection address (explicit FTPS: plain TCP, then `AUTH TLS`).
    pub listen: SocketAddr,
    /// Address of the Prometheus endpoint (`GET /metrics`).
    pub metrics_listen: SocketAddr,
    /// Directory holding one home directory per user (`<data_root>/<user>`).
    pub data_root: PathBuf,
    /// Users file: `name:$pbkdf2-sha256$...` lines (see the crate documentation).
    pub users_file: PathBuf,
    /// First line sent to a client.
    pub greeting: String,
    /// Logged-in sessions at once; one more login gets `421` and is closed.
    pub max_sessions: usize,
    /// Connections not logged in yet, at once; a new one beyond this evicts
    /// the oldest (which gets `421`), so they can never hold the slots of
    /// logged-in users nor keep a new user out.
    pub max_unauthenticated: usize,
    /// From connect to a successful `PASS`; then `421` and the connection closes.
    pub login_timeout_seconds: u64,
    /// A session with no command for this long is closed.
    pub idle_timeout_seconds: u64,
    pub tls: TlsConfig,
    pub passive: PassiveConfig,
    pub login: LoginConfig,
}

/// Certificate and protocol versions.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Lowest TLS version accepted: `"1.2"` or `"1.3"` (1.3 is always offered).
    pub min_version: TlsVersion,
    /// Every data connection must resume the TLS session of its own control
    /// connection (else `522`), which binds it to that session: behind a
    /// load balancer that rewrites sources, every client has the same
    /// address, so the address check binds nothing. `false` accepts clients
    /// that cannot resume, and lets whoever connects to a session's passive
    /// port first read its download or write its upload.
    pub require_session_reuse: bool,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    V1_2,
    #[serde(rename = "1.3")]
    V1_3,
}

/// Passive mode (PASV / EPSV) data connections.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveConfig {
    /// First port of the data port range.
    pub port_min: u16,
    /// Last port of the data port range (inclusive).
    pub port_max: u16,
    /// IPv4 address announced in PASV replies, e.g. the load balancer's.
    /// Empty: the local address of the client's control connection.
    pub address: String,
    /// After PASV/EPSV, the client has this long to connect (then `425`).
    pub connect_timeout_seconds: u64,
    /// A data connection has this long to finish its TLS handshake (then `425`).
    pub handshake_timeout_seconds: u64,
}

/// Failed-login policy (see [`crate::login_guard`]).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// A failed login is answered after this delay, doubled with each
    /// failure in a row of the same account (up to 16 times).
    pub failure_delay_ms: u64,
    /// This many failures in a row lock the account out (and the client
    /// address, with `per_source`)...
    pub max_failures: u32,
    /// ...for this long, doubled with each lockout in a row (up to
    /// `max_lockout_seconds`); meanwhile every login of it fails.
    pub lockout_seconds: u64,
    pub max_lockout_seconds: u64,
    /// Also count failures per client address and lock the address out.
    /// Only where clients keep their own address: behind a load balancer
    /// that rewrites sources, every client has the same one, and this would
    /// let anyone lock everybody out.
    pub per_source: bool,
    /// Password checks (PBKDF2) running at once; others wait their turn, so
    /// failed logins cannot take more CPU than this. 0: one per CPU.
    pub max_concurrent_checks: usize,
    /// A password verified against its PBKDF2 hash is remembered (as an HMAC
    /// under a random per-process key) for this long, so that clients opening
    /// many sessions do not pay the slow hash each time; 0 turns this off.
    pub verified_cache_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 21)),
            metrics_listen: SocketAddr::from(([0, 0, 0, 0], 9902)),
            data_root: PathBuf::from("/var/lib/ftps"),
            users_file: PathBuf::from("/run/secrets/ft-ftps/users"),
            greeting: "ftpsd ready (FTPS required: AUTH TLS)".to_owned(),
            max_sessions: 100,
            max_unauthenticated: 64,
            login_timeout_seconds: 30,
            idle_timeout_seconds: 600,
            tls: TlsConfig::default(),
            passive: PassiveConfig::default(),
            login: LoginConfig::default(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: PathBuf::from("/run/secrets/ft-tls/tls.crt"),
            key: PathBuf::from("/run/secrets/ft-tls/tls.key"),
            min_version: TlsVersion::V1_2,
            require_session_reuse: true,
        }
    }
}

impl Default for PassiveConfig {
    fn default() -> Self {
        Self {
            port_min: 30000,
            port_max: 30019,
            address: String::new(),
            connect_timeout_seconds: 9,
            handshake_timeout_seconds: 5,
        }
    }
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            failure_delay_ms: 1000,
            max_failures: 5,
            lockout_seconds: 300,
            max_lockout_seconds: 3600,
            per_source: true,
            max_concurrent_checks: 0,
            verified_cache_seconds: 300,
        }
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.passive.port_min == 0 || self.passive.port_min > self.passive.port_max {
            return Err(ConfigError::Invalid(format!(
                "passive port range {}-{} is empty or starts at 0",
                self.passive.port_min, self.passive.port_max
            )));
        }
        self.passive_address()?;
        if self.max_sessions == 0 {
            return Err(ConfigError::Invalid(
                "max_sessions must be at least 1".into(),
            ));
        }
        if self.max_unauthenticated == 0 || self.login_timeout_seconds == 0 {
            return Err(ConfigError::Invalid(
                "max_unauthenticated and login_timeout_seconds must be at least 1".into(),
            ));
        }
        let passive = &self.passive;
        if passive.connect_timeout_seconds == 0
            || passive.handshake_timeout_seconds == 0
            || passive.connect_timeout_seconds + passive.handshake_timeout_seconds
                > MAX_DATA_SETUP_SECONDS
        {
            return Err(ConfigError::Invalid(format!(
                "passive.connect_timeout_seconds + passive.handshake_timeout_seconds must be 2 to \
                 {MAX_DATA_SETUP_SECONDS} (libunftp stops waiting for the data connection after 15 s)"
            )));
        }
        if self.login.lockout_seconds > self.login.max_lockout_seconds {
            return Err(ConfigError::Invalid(
                "login.lockout_seconds is above login.max_lockout_seconds".into(),
            ));
        }
        if self.idle_timeout_seconds == 0 {
            return Err(ConfigError::Invalid(
                "idle_timeout_seconds must be at least 1".into(),
            ));
        }
        if self.login.max_failures == 0 {
            return Err(ConfigError::Invalid(
                "login.max_failures must be at least 1".into(),
            ));
        }
        if !self.data_root.is_absolute() {
            return Err(ConfigError::Invalid(format!(
                "data_root {} must be absolute",
                self.data_root.display()
            )));
        }
        Ok(())
    }

    /// The address announced in PASV replies, if one is configured.
    pub fn passive_address(&self) -> Result<Option<Ipv4Addr>, ConfigError> {
        let text = self.passive.address.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            ConfigError::Invalid(format!("passive.address {text:?} is not an IPv4 address"))
        })
    }

    pub fn failure_delay(&self) -> Duration {
        Duration::from_millis(self.login.failure_delay_ms)
    }

    pub fn lockout(&self) -> Duration {
        Duration::from_secs(self.login.lockout_seconds)
    }

    pub fn login_timeout(&self) -> Duration {
        Duration::from_secs(self.login_timeout_seconds)
    }

    /// How many password checks may run at once.
    pub fn concurrent_checks(&self) -> usize {
        match self.login.max_concurrent_checks {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config, Config::default());
        config.validate().unwrap();
        assert_eq!(config.listen.port(), 21);
        assert_eq!(
            (config.passive.port_min, config.passive.port_max),
            (30000, 30019)
        );
    }

    #[test]
    fn full_file_parses() {
        let config: Config = toml::from_str(
            r#"
            listen = "127.0.0.1:2121"
            metrics_listen = "127.0.0.1:9999"
            data_root = "/srv/ftp"
            users_file = "/etc/ftpsd.users"
            greeting = "hi"
            max_sessions = 3
            idle_timeout_seconds = 5
            [tls]
            cert = "/c.pem"
            key = "/k.pem"
            min_version = "1.3"
            [passive]
            port_min = 40000
            port_max = 40009
            address = "192.168.49.20"
            [login]
            failure_delay_ms = 10
            max_failures = 2
            lockout_seconds = 60
            verified_cache_seconds = 0
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.tls.min_version, TlsVersion::V1_3);
        assert_eq!(
            config.passive_address().unwrap(),
            Some(Ipv4Addr::new(192, 168, 49, 20))
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for text in [
            "[passive]\nport_min = 10\nport_max = 9",
            "[passive]\naddress = \"not-an-ip\"",
            "max_sessions = 0",
            "max_unauthenticated = 0",
            "[passive]\nconnect_timeout_seconds = 10\nhandshake_timeout_seconds = 10",
            "[login]\nlockout_seconds = 7200",
            "data_root = \"relative\"",
        ] {
            let config: Config = toml::from_str(text).unwrap();
            assert!(config.validate().is_err(), "{text} accepted");
        }
        assert!(toml::from_str::<Config>("unknown = 1").is_err());
        assert!(toml::from_str::<Config>("[tls]\nmin_version = \"1.1\"").is_err());
    }
}
