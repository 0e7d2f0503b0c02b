//! The rustls server configurations: TLS 1.2 and 1.3, one certificate, and
//! session resumption (session IDs and tickets) so that a data connection
//! can resume the control connection's session, as FileZilla, WinSCP, lftp
//! and curl do.
//!
//! Each control connection gets a copy whose tickets and cached sessions
//! name it ([`TlsConfigs::for_session`]); a data connection is accepted when
//! it resumes a session of a connection logged in as the same user, which
//! is what binds data connections when every client comes from the same
//! address ([`crate::tls_sessions`], [`crate::data_channel`]).

use crate::config::{TlsConfig, TlsVersion};
use crate::data_port::DataPort;
use crate::tls_sessions::{Resumption, SessionId, SharedSessions};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// Errors building the TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate {path}")]
    Cert {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("certificate file {0} holds no certificate")]
    NoCert(String),
    #[error("cannot read private key {path}")]
    Key {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("TLS setup")]
    Rustls(#[from] rustls::Error),
}

/// The configuration every session's TLS is made from, and what all
/// sessions share (ticket key, session cache, owners: [`crate::tls_sessions`]).
#[derive(Debug, Clone)]
pub struct TlsConfigs {
    base: Arc<ServerConfig>,
    shared: SharedSessions,
}

/// One control connection's TLS: its id, and the configurations of its
/// control and data connections.
///
/// A data connection gives the client one new TLS 1.3 ticket (some clients,
/// curl with OpenSSL among them, resume each ticket once only and need a
/// fresh one for their next transfer), unless its port says otherwise
/// ([`crate::data_port`]: some clients never read an upload's connection)
/// or it did not resume a session of the port's user.
#[derive(Debug, Clone)]
pub struct SessionTls {
    pub control: Arc<ServerConfig>,
    data: Arc<ServerConfig>,
    pub id: Arc<SessionId>,
    shared: SharedSessions,
}

impl TlsConfigs {
    /// A new control connection's TLS.
    pub fn for_session(&self) -> SessionTls {
        let id = Arc::new(self.shared.owners.open());
        let mut control = (*self.base).clone();
        (control.ticketer, control.session_storage) = self.shared.control(&id);
        let mut data = (*self.base).clone();
        data.send_tls13_tickets = 1;
        SessionTls {
            control: Arc::new(control),
            data: Arc::new(data),
            id,
            shared: self.shared.clone(),
        }
    }
}

impl SessionTls {
    #[cfg(test)]
    pub fn for_tests(config: Arc<ServerConfig>) -> Self {
        let shared = SharedSessions::new().expect("ticket key");
        Self {
            control: config.clone(),
            data: config,
            id: Arc::new(shared.owners.open()),
            shared,
        }
    }

    /// The configuration of one data connection on `port`, and what its
    /// handshake resumes.
    pub fn for_connection(&self, port: Arc<DataPort>) -> (Arc<ServerConfig>, Arc<Resumption>) {
        let mut data = (*self.data).clone();
        let resumption;
        (data.ticketer, data.session_storage, resumption) = self.shared.data(&self.id, port);
        (Arc::new(data), resumption)
    }
}

/// Builds the base configuration from the PEM files named in `config`.
pub fn server_configs(config: &TlsConfig) -> Result<TlsConfigs, TlsError> {
    Ok(TlsConfigs {
        base: Arc::new(server_config(config)?),
        shared: SharedSessions::new()?,
    })
}

/// The rustls crypto provider, chosen at build time (see the crate's features).
#[cfg(feature = "aws-lc-rs")]
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// The rustls crypto provider, chosen at build time (see the crate's features).
#[cfg(not(feature = "aws-lc-rs"))]
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The ticket key's producer, of the same provider.
pub fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, rustls::Error> {
    #[cfg(feature = "aws-lc-rs")]
    return rustls::crypto::aws_lc_rs::Ticketer::new();
    #[cfg(not(feature = "aws-lc-rs"))]
    return rustls::crypto::ring::Ticketer::new();
}

fn server_config(config: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let cert_path = config.cert.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|source| TlsError::Cert {
            path: cert_path.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert(cert_path));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(|source| TlsError::Key {
        path: config.key.display().to_string(),
        source,
    })?;

    let versions: &[&rustls::SupportedProtocolVersion] = match config.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let mut server = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // The server's order of its (all AEAD, all forward-secret) suites, not
    // the client's: scanners rate a server that lets a client pick worse.
    server.ignore_client_order = true;
    Ok(server)
}
