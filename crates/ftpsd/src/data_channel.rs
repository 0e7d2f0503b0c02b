//! Passive data connections, with their TLS, in front of libunftp.
//!
//! For each `PASV`/`EPSV`, libunftp asks [`PassiveBinder`] for a listener:
//! it gets a loopback one, and ftpsd opens the real passive port itself
//! (`DataChannels::serve`). There it accepts the client's connections
//! (only from the control connection's address), runs their TLS handshakes
//! with the session's own configuration ([`crate::tls::SessionTls`]), and
//! the first handshake to finish decides:
//!
//! - it resumed a TLS session that the server issued to a control connection
//!   logged in as the same user (or resumption is not required): it is the
//!   session's data connection ([`crate::tls_sessions`]: a client with
//!   several control connections may resume any of them). ftpsd connects
//!   to libunftp's loopback port, so that libunftp runs the transfer and
//!   sends its replies as usual, and then, by the transfer command: a
//!   listing is piped to and from that loopback connection in plaintext; a
//!   file transfer's TLS stream is parked in the port's [`DataPort`], where
//!   the session's storage takes it when libunftp asks it for the file
//!   ([`crate::storage`]): the file's bytes go between the file and the
//!   client's TLS stream in one step, and libunftp's loopback connection
//!   carries none;
//! - it did not: `522` (another user's connection, or a client that cannot
//!   resume, such as Python's stock `ftplib`);
//! - it failed (plain text, junk): `425`.
//!
//! A connection that stays silent fails after the handshake timeout, a
//! client that never connects after the connect timeout, both with `425`.
//! Each outcome is recorded in the port's [`DataPort`], which the relay
//! reads: a failure is answered in place of the transfer's `1xx`, or of its
//! final reply if the `1xx` went out first (see [`crate::data_port`] for
//! when the `1xx` waits, and which connections give a session ticket).
//! libunftp never sees a refused connection, so a failed upload never
//! touches a file.
//!
//! Behind a load balancer that rewrites sources every client has the same
//! address: the address check binds nothing there, resumption does.

use crate::data_port::{DataPort, DataStream, PortState, Transfer, Watched};
use crate::tls::SessionTls;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;

/// Copy buffer of a data connection in the direction of the transfer, and
/// in the other one (which carries nothing but the end of the stream).
const DATA_BUFFER: usize = 256 * 1024;
const REVERSE_BUFFER: usize = 8 * 1024;
/// Connections accepted on one passive port while their handshakes run.
const MAX_PENDING_HANDSHAKES: usize = 8;

/// How data connections are checked.
#[derive(Debug, Clone, Copy)]
pub struct DataPolicy {
    pub require_session_reuse: bool,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
}

/// One session's data connections: which loopback port of libunftp stands
/// behind which public passive port, and where failures are reported.
#[derive(Debug)]
pub struct DataChannels {
    /// Only this address may open the session's data connections.
    client_ip: IpAddr,
    /// Address the passive ports are opened on (where the client reached us).
    listen_ip: IpAddr,
    tls: SessionTls,
    policy: DataPolicy,
    /// libunftp's loopback port -> public port and its state.
    ports: Mutex<HashMap<u16, (u16, Arc<DataPort>)>>,
    /// The port of the latest passive reply, which the next transfer uses.
    current: Mutex<Option<Arc<DataPort>>>,
}

const REPLY_NOT_RESUMED: &str =
    "522 Data connection refused: it must resume a TLS session of your control connections.";
const REPLY_HANDSHAKE_FAILED: &str = "425 Data connection failed: TLS handshake failed.";
const REPLY_HANDSHAKE_TIMEOUT: &str = "425 Data connection failed: no TLS handshake in time.";
const REPLY_NO_CONNECTION: &str = "425 No data connection: the client did not connect in time.";
const REPLY_INTERNAL: &str = "425 Data connection failed on the server side.";

/// Why a handshake did not give a data connection.
enum Handshake {
    /// Done, and whether it resumed a session of the port's user.
    Done(Box<TlsStream<Watched>>, bool),
    Failed(std::io::Error),
    TimedOut,
}

impl DataChannels {
    pub fn new(
        client_ip: IpAddr,
        listen_ip: IpAddr,
        tls: SessionTls,
        policy: DataPolicy,
    ) -> Arc<Self> {
        Arc::new(Self {
            client_ip,
            listen_ip,
            tls,
            policy,
            ports: Mutex::new(HashMap::new()),
            current: Mutex::new(None),
        })
    }

    /// How long a transfer's `1xx` may wait for a handshake under way.
    pub fn handshake_timeout(&self) -> Duration {
        self.policy.handshake_timeout
    }

    /// Replaces libunftp's loopback port in a `227` or `229` reply by the
    /// public one; also returns the public port's state.
    pub fn rewrite_passive_reply(&self, line: &[u8]) -> Option<(Vec<u8>, Arc<DataPort>)> {
        let text = std::str::from_utf8(line).ok()?;
        let map = |internal: u16| {
            let (public, port) = self
                .ports
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&internal)?;
            *self.current() = Some(port.clone());
            Some((public, port))
        };
        if text.starts_with("227 ") {
            // 227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)
            let open = text.find('(')?;
            let close = text[open..].find(')')? + open;
            let numbers: Vec<u16> = text[open + 1..close]
                .split(',')
                .map(|n| n.trim().parse().ok())
                .collect::<Option<_>>()?;
            let [h1, h2, h3, h4, p1, p2] = numbers[..] else {
                return None;
            };
            let (public, port) = map(p1 * 256 + p2)?;
            let line = format!(
                "{}({h1},{h2},{h3},{h4},{},{}){}",
                &text[..open],
                public / 256,
                public % 256,
                &text[close + 1..]
            );
            return Some((line.into_bytes(), port));
        }
        if text.starts_with("229 ") {
            // 229 Entering Extended Passive Mode (|||port|)
            let open = text.find("(|||")?;
            let close = text[open..].find("|)")? + open;
            let (public, port) = map(text[open + 4..close].parse().ok()?)?;
            let line = format!("{}(|||{public}|){}", &text[..open], &text[close + 2..]);
            return Some((line.into_bytes(), port));
        }
        None
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Option<Arc<DataPort>>> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The relay forwarded a command: a transfer on the current port
    /// (`upload` or not), or anything else.
    pub fn command_forwarded(&self, verb: &str) {
        let (upload, transfer) = match verb {
            "STOR" | "APPE" | "STOU" => (true, Transfer::File),
            "RETR" => (false, Transfer::File),
            "LIST" | "NLST" | "MLSD" => (false, Transfer::Listing),
            _ => return,
        };
        if let Some(port) = &*self.current() {
            port.command_forwarded(upload, transfer);
        }
    }

    /// The port of the latest passive reply, whose transfer libunftp runs now.
    pub fn current_port(&self) -> Option<Arc<DataPort>> {
        self.current().clone()
    }

    /// One handshake on an accepted connection, bounded by the handshake timeout.
    async fn handshake(self: Arc<Self>, stream: Watched, port: Arc<DataPort>) -> Handshake {
        let _ = stream.stream().set_nodelay(true);
        let (config, resumption) = self.tls.for_connection(port);
        let handshake = tokio_rustls::TlsAcceptor::from(config).accept(stream);
        match tokio::time::timeout(self.policy.handshake_timeout, handshake).await {
            Ok(Ok(tls)) => {
                let resumed =
                    tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                let bound = resumed
                    && resumption
                        .same_user_once_known(self.policy.handshake_timeout)
                        .await;
                if resumed && !bound {
                    tracing::info!(
                        resumed = resumption.describe(),
                        "data connection resumed a session not of the port's user"
                    );
                }
                Handshake::Done(Box::new(tls), bound)
            }
            Ok(Err(e)) => Handshake::Failed(e),
            Err(_) => Handshake::TimedOut,
        }
    }

    /// Waits for the session's data connection on `public` (see the module
    /// documentation) and pipes it to libunftp's loopback port `internal`.
    async fn serve(
        self: Arc<Self>,
        public: TcpListener,
        internal: SocketAddr,
        state: Arc<DataPort>,
    ) {
        let port = public.local_addr().map_or(0, |a| a.port());
        let connect_deadline = tokio::time::Instant::now() + self.policy.connect_timeout;
        let mut handshakes = JoinSet::new();
        let mut listening = Some(public);
        let mut tls = loop {
            let can_accept = listening.is_some() && handshakes.len() < MAX_PENDING_HANDSHAKES;
            tokio::select! {
                accepted = async { listening.as_ref().expect("checked").accept().await }, if can_accept => match accepted {
                    Ok((stream, peer)) if peer.ip() == self.client_ip => {
                        match state.accept(stream) {
                            Ok(watched) => {
                                handshakes.spawn(self.clone().handshake(watched, state.clone()));
                            }
                            Err(e) => tracing::warn!(error = %e, port, "data connection dropped: no descriptor left"),
                        }
                    }
                    Ok((_, peer)) => {
                        tracing::warn!(peer = %peer, client = %self.client_ip, port, "data connection from another address refused");
                    }
                    Err(e) => tracing::debug!(error = %e, port, "data accept failed"),
                },
                Some(done) = handshakes.join_next() => {
                    match done {
                        Ok(Handshake::Done(mut tls, bound)) => {
                            if bound || !self.policy.require_session_reuse {
                                state.decide(PortState::Connected);
                                break tls;
                            }
                            let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                            tracing::warn!(client = %self.client_ip, port, resumed, "data connection refused: it did not resume a TLS session of this user");
                            state.decide(PortState::Failed(REPLY_NOT_RESUMED));
                            // A clean TLS close (no data), so that the client reads the 522.
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                tokio::io::AsyncWriteExt::shutdown(&mut tls),
                            )
                            .await;
                        }
                        Ok(Handshake::Failed(e)) => {
                            tracing::warn!(client = %self.client_ip, port, error = %e, "data connection TLS handshake failed");
                            state.decide(PortState::Failed(REPLY_HANDSHAKE_FAILED));
                        }
                        Ok(Handshake::TimedOut) => {
                            tracing::warn!(client = %self.client_ip, port, "data connection TLS handshake timed out");
                            state.decide(PortState::Failed(REPLY_HANDSHAKE_TIMEOUT));
                        }
                        Err(e) => {
                            tracing::error!(error = %e, port, "data handshake task failed");
                            state.decide(PortState::Failed(REPLY_INTERNAL));
                        }
                    }
                    return;
                }
                () = tokio::time::sleep_until(connect_deadline), if listening.is_some() => {
                    // No more connections; those accepted may still finish their handshake.
                    listening = None;
                    if handshakes.is_empty() {
                        tracing::info!(client = %self.client_ip, port, "no data connection in time");
                        state.decide(PortState::Failed(REPLY_NO_CONNECTION));
                        return;
                    }
                }
            }
        };
        drop(listening);
        handshakes.abort_all();
        let backend = match TcpStream::connect(internal).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, port, "cannot reach libunftp's data port");
                state.decide(PortState::Failed(REPLY_INTERNAL));
                state.no_handover();
                return;
            }
        };
        let _ = backend.set_nodelay(true);
        // What the transfer moves is known once its command was forwarded
        // (before libunftp sees it). libunftp writes nothing before then: its
        // end becoming readable means it closed (a new PASV, the session's end).
        let transfer = tokio::select! {
            transfer = state.transfer() => Some(transfer),
            _ = backend.readable() => state.transfer_now(),
        };
        match transfer {
            Some(Transfer::File) => {
                tls.get_mut().1.set_buffer_limit(Some(DATA_BUFFER));
                state.park(tls);
                // libunftp closes its end once the storage is done (or when it
                // ends the transfer without asking the storage).
                let _ = wait_closed(backend).await;
                if let Some(tls) = state.reclaim() {
                    tracing::debug!(
                        port,
                        "file transfer ended without the storage: data connection closed"
                    );
                    close(*tls).await;
                }
            }
            Some(Transfer::Listing) => {
                state.no_handover();
                pipe(*tls, backend, &state).await;
            }
            None => {
                state.no_handover();
                close(*tls).await;
            }
        }
        tracing::debug!(client = %self.client_ip, port, "data connection done");
    }
}

/// Waits until the other end of `stream` has closed it (or reset it).
async fn wait_closed(stream: TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 512];
    loop {
        stream.readable().await?;
        match stream.try_read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// Ends a data connection with a clean TLS close, given a second at most.
pub async fn close(mut tls: DataStream) {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::io::AsyncWriteExt::shutdown(&mut tls),
    )
    .await;
}

/// Copies both ways between the client's TLS connection and libunftp's
/// loopback connection, each direction ended by the end of its stream (to
/// the client with `close_notify`), and records in `port` whether the
/// direction to the client completed: the relay holds the transfer's `226`
/// until then, and answers `426` if it did not. A failed direction ends
/// both, so that libunftp's side fails too rather than block.
async fn pipe(tls: TlsStream<Watched>, backend: TcpStream, port: &DataPort) {
    use tokio::io::AsyncWriteExt as _;
    let (to_backend_size, to_client_size) = if port.is_upload() {
        (DATA_BUFFER, REVERSE_BUFFER)
    } else {
        (REVERSE_BUFFER, DATA_BUFFER)
    };
    let (client_read, mut client_write) = tokio::io::split(tls);
    let (backend_read, mut backend_write) = backend.into_split();
    let to_client = async {
        let mut from = tokio::io::BufReader::with_capacity(to_client_size, backend_read);
        tokio::io::copy_buf(&mut from, &mut client_write).await?;
        client_write.shutdown().await
    };
    let to_backend = async {
        let mut from = tokio::io::BufReader::with_capacity(to_backend_size, client_read);
        tokio::io::copy_buf(&mut from, &mut backend_write).await?;
        backend_write.shutdown().await
    };
    tokio::pin!(to_client, to_backend);
    let (mut client_done, mut backend_done) = (false, false);
    while !(client_done && backend_done) {
        tokio::select! {
            copied = &mut to_client, if !client_done => {
                client_done = true;
                port.copied_to_client(copied.is_ok());
                if let Err(e) = copied {
                    tracing::debug!(error = %e, "copy to the client cut short");
                    break;
                }
            }
            copied = &mut to_backend, if !backend_done => {
                backend_done = true;
                if let Err(e) = copied {
                    tracing::debug!(error = %e, "copy from the client cut short");
                    break;
                }
            }
        }
    }
    if !client_done {
        port.copied_to_client(false);
    }
}

/// libunftp's passive-port binder for one session; see the module documentation.
#[derive(Debug)]
pub struct PassiveBinder {
    pub channels: Arc<DataChannels>,
}

impl PassiveBinder {
    /// A listener on a free port of `ports`, trying each once from a random start.
    fn public_listener(
        &self,
        ports: std::ops::RangeInclusive<u16>,
    ) -> std::io::Result<TcpListener> {
        let (first, last) = (*ports.start(), *ports.end());
        let span = u32::from(last - first) + 1;
        let mut seed = [0u8; 4];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| std::io::Error::other("no random numbers"))?;
        let start = u32::from_ne_bytes(seed) % span;
        for i in 0..span {
            let port = first + ((start + i) % span) as u16;
            let socket = if self.channels.listen_ip.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            if socket
                .bind(SocketAddr::new(self.channels.listen_ip, port))
                .is_ok()
                && let Ok(listener) = socket.listen(16)
            {
                return Ok(listener);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "all passive ports are in use",
        ))
    }
}

#[async_trait::async_trait]
impl libunftp::options::Binder for PassiveBinder {
    async fn bind(
        &mut self,
        _seen: IpAddr,
        ports: std::ops::RangeInclusive<u16>,
    ) -> std::io::Result<TcpSocket> {
        let public = self.public_listener(ports)?;
        let public_port = public.local_addr()?.port();
        let internal = TcpSocket::new_v4()?;
        internal.bind((Ipv4Addr::LOCALHOST, 0).into())?;
        let internal_addr = internal.local_addr()?;
        let state = DataPort::new();
        self.channels
            .ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(internal_addr.port(), (public_port, state.clone()));
        tokio::spawn(self.channels.clone().serve(public, internal_addr, state));
        Ok(internal)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn passive_replies_get_the_public_port() {
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(crate::tls::provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new())),
        );
        let tls = SessionTls::for_tests(config);
        let policy = DataPolicy {
            require_session_reuse: true,
            connect_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(1),
        };
        let channels = DataChannels::new(
            Ipv4Addr::LOCALHOST.into(),
            Ipv4Addr::LOCALHOST.into(),
            tls,
            policy,
        );
        let (first, second) = (DataPort::new(), DataPort::new());
        channels
            .ports
            .lock()
            .unwrap()
            .insert(40001, (30005, first.clone()));
        channels
            .ports
            .lock()
            .unwrap()
            .insert(40002, (30006, second.clone()));
        let (out, port) = channels
            .rewrite_passive_reply(b"227 Entering Passive Mode (10,0,0,5,156,65)\r\n")
            .unwrap();
        assert_eq!(out, b"227 Entering Passive Mode (10,0,0,5,117,53)\r\n");
        assert!(Arc::ptr_eq(&port, &first));
        let (out, port) = channels
            .rewrite_passive_reply(b"229 Entering Extended Passive Mode (|||40002|)\r\n")
            .unwrap();
        assert_eq!(out, b"229 Entering Extended Passive Mode (|||30006|)\r\n");
        assert!(Arc::ptr_eq(&port, &second));
        assert!(
            channels
                .rewrite_passive_reply(b"229 Entering Extended Passive Mode (|||40002|)\r\n")
                .is_none()
        );
        assert!(channels.rewrite_passive_reply(b"226 Done\r\n").is_none());
    }
}
