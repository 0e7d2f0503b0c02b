//! The rustls server configurations: TLS 1.2 and 1.3, one certificate, and
//! session resumption (session IDs and tickets) so that a data connection
//! can resume the control connection's session, as FileZilla, WinSCP, lftp
//! and curl do.
//!
//! Each control connection gets a copy with a session store and a ticket key
//! of its own ([`TlsConfigs::for_session`]): a data connection that resumes
//! a session of that copy can only be one of that control connection's
//! client, which is what binds data connections to their session when every
//! client comes from the same address (see [`crate::data_channel`]).

use crate::config::{TlsConfig, TlsVersion};
use crate::data_port::{DataPort, PortTickets};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::StoresServerSessions;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

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

/// The configuration every session's TLS is made from.
#[derive(Debug, Clone)]
pub struct TlsConfigs {
    base: Arc<ServerConfig>,
}

/// One control connection's TLS: the control and data configurations share
/// its own session store and ticket key.
///
/// A data connection gives the client one new TLS 1.3 ticket (some clients,
/// curl with OpenSSL among them, resume each ticket once only and need a
/// fresh one for their next transfer), unless its port says otherwise
/// ([`crate::data_port`]: some clients never read an upload's connection).
#[derive(Debug, Clone)]
pub struct SessionTls {
    pub control: Arc<ServerConfig>,
    data: Arc<ServerConfig>,
}

/// Sessions one control connection's store keeps: its own, and a few more
/// should the client reconnect its control channel's TLS.
const SESSIONS_PER_CONNECTION: usize = 8;

impl TlsConfigs {
    /// A fresh session store and ticket key for one control connection.
    pub fn for_session(&self) -> Result<SessionTls, TlsError> {
        let mut control = (*self.base).clone();
        control.session_storage = SessionCache::new(SESSIONS_PER_CONNECTION);
        control.ticketer = rustls::crypto::ring::Ticketer::new()?;
        let mut data = control.clone();
        data.send_tls13_tickets = 1;
        Ok(SessionTls {
            control: Arc::new(control),
            data: Arc::new(data),
        })
    }
}

impl SessionTls {
    #[cfg(test)]
    pub fn for_tests(config: Arc<ServerConfig>) -> Self {
        Self {
            control: config.clone(),
            data: config,
        }
    }

    /// The configuration of one passive port's data connections: the
    /// session's, with tickets issued as the port allows.
    pub fn for_port(&self, port: Arc<DataPort>) -> Arc<ServerConfig> {
        let mut data = (*self.data).clone();
        data.ticketer = Arc::new(PortTickets {
            session: self.data.ticketer.clone(),
            port,
        });
        Arc::new(data)
    }
}

/// Builds the base configuration from the PEM files named in `config`.
pub fn server_configs(config: &TlsConfig) -> Result<TlsConfigs, TlsError> {
    Ok(TlsConfigs {
        base: Arc::new(server_config(config)?),
    })
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // The server's order of its (all AEAD, all forward-secret) suites, not
    // the client's: scanners rate a server that lets a client pick worse.
    server.ignore_client_order = true;
    Ok(server)
}

/// Server-side session store whose `take` leaves the session in place.
///
/// rustls' own cache removes a session when it is resumed, so only the first
/// data connection of a control session could resume it; FTP clients resume
/// the same session for every transfer. Oldest entries go first when full.
#[derive(Debug)]
struct SessionCache {
    capacity: usize,
    inner: Mutex<Sessions>,
}

/// Sessions by key, and keys oldest first.
type Sessions = (HashMap<Vec<u8>, Vec<u8>>, VecDeque<Vec<u8>>);

impl SessionCache {
    fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        })
    }
}

impl StoresServerSessions for SessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (map, order) = &mut *guard;
        if map.insert(key.clone(), value).is_none() {
            order.push_back(key);
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .get(key)
            .cloned()
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn session_cache_keeps_taken_sessions_and_is_bounded() {
        let cache = SessionCache::new(2);
        cache.put(b"a".to_vec(), b"1".to_vec());
        assert_eq!(cache.take(b"a"), Some(b"1".to_vec()));
        assert_eq!(cache.take(b"a"), Some(b"1".to_vec()));
        cache.put(b"b".to_vec(), b"2".to_vec());
        cache.put(b"c".to_vec(), b"3".to_vec());
        assert_eq!(cache.get(b"a"), None);
        assert_eq!(cache.get(b"c"), Some(b"3".to_vec()));
    }
}
