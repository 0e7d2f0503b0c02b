//! TLS for the control and data connections, in front of libunftp.
//!
//! libunftp 0.24 enforces `PROT P` only for `PASV` (a client sending `PROT C`
//! and `EPSV`, as curl does, gets a plaintext data connection), unwraps a
//! failed TLS handshake on a data connection (a panic, which ends the process
//! in a `panic = "abort"` build) and closes uploads without a TLS
//! `close_notify` (Python's ftplib then fails). So ftpsd does the TLS itself:
//! libunftp runs without TLS behind loopback connections, and
//!
//! - [`relay`] terminates the control connection's TLS and passes commands
//!   on, answering `AUTH`, `PBSZ`, `PROT` and `FEAT` itself and refusing
//!   everything but `AUTH TLS`, `FEAT`, `NOOP`, `HELP`, `SYST`, `QUIT` before
//!   TLS (`530`), `PROT` other than `P` (`536`), `CCC` (`534`), `PASV`/`EPSV`
//!   before `PROT P` (`521`, RFC 4217) and active mode (`PORT`/`EPRT`, `502`);
//! - [`PassiveBinder`] gives libunftp a loopback data listener, opens the real
//!   passive port itself, accepts only the control connection's client IP,
//!   does the TLS handshake (same rustls configuration, so the client can
//!   resume the control connection's session) and pipes the plaintext to
//!   libunftp; the relay rewrites the port in `227`/`229` replies.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;

/// Longest command line accepted (RFC 959 has no limit; paths can be long).
const MAX_LINE: usize = 8192;

/// Pairs of connected loopback sockets: one end for the relay, the other for libunftp.
#[derive(Debug)]
pub struct Loopback {
    addr: SocketAddr,
    pending: Mutex<HashMap<u16, oneshot::Sender<TcpStream>>>,
}

impl Loopback {
    /// Binds the internal listener and starts accepting on it.
    pub async fn start() -> std::io::Result<Arc<Self>> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let this = Arc::new(Self {
            addr: listener.local_addr()?,
            pending: Mutex::new(HashMap::new()),
        });
        let dispatcher = this.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                // Only connections the relay itself opened are handed on; anything
                // else (another local process) is dropped.
                let waiting = dispatcher
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&peer.port());
                match waiting {
                    Some(tx) if peer.ip().is_loopback() => {
                        let _ = tx.send(stream);
                    }
                    _ => {
                        tracing::warn!(peer = %peer, "unexpected connection on the internal port dropped")
                    }
                }
            }
        });
        Ok(this)
    }

    /// Returns (relay end, libunftp end).
    pub async fn pair(&self) -> std::io::Result<(TcpStream, TcpStream)> {
        let socket = TcpSocket::new_v4()?;
        socket.bind((Ipv4Addr::LOCALHOST, 0).into())?;
        let port = socket.local_addr()?.port();
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(port, tx);
        let ours = match socket.connect(self.addr).await {
            Ok(s) => s,
            Err(e) => {
                self.pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&port);
                return Err(e);
            }
        };
        let theirs = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .map_err(|_| std::io::Error::other("internal connection not accepted in time"))?
            .map_err(|_| std::io::Error::other("internal dispatcher stopped"))?;
        ours.set_nodelay(true)?;
        theirs.set_nodelay(true)?;
        Ok((ours, theirs))
    }
}

/// What the guard does with one client command.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Forward,
    /// Answer `234` and start TLS.
    StartTls,
    /// Answer this reply without asking libunftp.
    Refuse(&'static str),
}

/// What libunftp supports, plus the TLS commands the relay handles.
const FEAT_REPLY: &str = "211-Extensions supported:\r\n AUTH TLS\r\n EPSV\r\n MDTM\r\n MLSD\r\n MLST\r\n PBSZ\r\n PROT\r\n REST STREAM\r\n SIZE\r\n UTF8\r\n211 END";

#[derive(Debug, Default)]
struct State {
    tls: bool,
    prot_p: bool,
}

impl State {
    fn judge(&mut self, line: &str) -> Verdict {
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        let arg = words.next().unwrap_or("").to_ascii_uppercase();
        if !self.tls {
            return match verb.as_str() {
                "AUTH" if arg == "TLS" || arg == "SSL" || arg == "TLS-C" => Verdict::StartTls,
                "AUTH" => Verdict::Refuse("504 Only AUTH TLS is supported."),
                "FEAT" => Verdict::Refuse(FEAT_REPLY),
                "NOOP" | "HELP" | "SYST" | "QUIT" => Verdict::Forward,
                _ => Verdict::Refuse("530 TLS required: send AUTH TLS first."),
            };
        }
        match verb.as_str() {
            "AUTH" => Verdict::Refuse("503 TLS is already active."),
            "FEAT" => Verdict::Refuse(FEAT_REPLY),
            "CCC" => Verdict::Refuse("534 The control connection stays encrypted."),
            "PBSZ" => Verdict::Refuse("200 PBSZ=0"),
            "PROT" if arg == "P" => {
                self.prot_p = true;
                Verdict::Refuse("200 PROT now Private.")
            }
            "PROT" => Verdict::Refuse("536 Only PROT P (private) is supported."),
            "PORT" | "EPRT" | "LPRT" => {
                Verdict::Refuse("502 Active mode is not supported: use PASV or EPSV.")
            }
            "PASV" | "EPSV" | "LPSV" if !self.prot_p => Verdict::Refuse(
                "521 Data connections must be encrypted: send PBSZ 0 and PROT P first.",
            ),
            _ => Verdict::Forward,
        }
    }
}

/// Reads one CRLF (or LF) line; `None` at end of stream.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<String>> {
    buf.clear();
    let n = (&mut *reader)
        .take(MAX_LINE as u64)
        .read_until(b'\n', buf)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && n >= MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "command line too long",
        ));
    }
    Ok(Some(
        String::from_utf8_lossy(buf)
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
    ))
}

use tokio::io::AsyncReadExt as _;

type SharedWriter<W> = Arc<tokio::sync::Mutex<W>>;

/// Copies libunftp's replies to the client until libunftp closes or `stop` fires.
async fn forward_replies<R, W>(
    mut backend: BufReader<R>,
    client: SharedWriter<W>,
    channels: Arc<DataChannels>,
    mut stop: oneshot::Receiver<()>,
) -> (BufReader<R>, bool)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(256);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return (backend, false),
            read = backend.read_until(b'\n', &mut buf) => {
                match read {
                    Ok(0) | Err(_) => return (backend, true),
                    Ok(_) => {
                        if let Some(rewritten) = channels.rewrite_passive_reply(&buf) {
                            buf = rewritten;
                        }
                        let mut w = client.lock().await;
                        if w.write_all(&buf).await.is_err() || w.flush().await.is_err() {
                            return (backend, true);
                        }
                        buf.clear();
                    }
                }
            }
        }
    }
}

/// Relays one client session. `backend` is libunftp's end of a loopback pair.
pub async fn relay(
    client: TcpStream,
    backend: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    channels: Arc<DataChannels>,
) -> std::io::Result<()> {
    let (backend_read, mut backend_write) = backend.into_split();
    let (client_read, client_write) = client.into_split();
    let mut state = State::default();
    let mut buf = Vec::with_capacity(256);

    // Plain phase: until AUTH TLS.
    let writer = Arc::new(tokio::sync::Mutex::new(client_write));
    let (stop_tx, stop_rx) = oneshot::channel();
    let mut forwarder = tokio::spawn(forward_replies(
        BufReader::new(backend_read),
        writer.clone(),
        channels.clone(),
        stop_rx,
    ));
    let mut reader = BufReader::new(client_read);
    loop {
        let line = tokio::select! {
            line = read_line(&mut reader, &mut buf) => line?,
            _ = &mut forwarder => return Ok(()),
        };
        let Some(line) = line else { return Ok(()) };
        match state.judge(&line) {
            Verdict::Forward => {
                backend_write.write_all(line.as_bytes()).await?;
                backend_write.write_all(b"\r\n").await?;
            }
            Verdict::Refuse(reply) => write_reply(&writer, reply).await?,
            Verdict::StartTls => {
                write_reply(&writer, "234 AUTH TLS successful, start TLS negotiation.").await?;
                break;
            }
        }
    }
    // Take the halves back and upgrade. The client sends nothing until the
    // handshake, so the reader has nothing buffered.
    let _ = stop_tx.send(());
    let (backend_reader, _closed) = forwarder.await.map_err(std::io::Error::other)?;
    if !reader.buffer().is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "data sent before the TLS handshake",
        ));
    }
    let client_write = Arc::try_unwrap(writer)
        .map_err(|_| std::io::Error::other("reply writer still shared"))?
        .into_inner();
    let client = reader
        .into_inner()
        .reunite(client_write)
        .map_err(std::io::Error::other)?;
    let tls_stream = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_rustls::TlsAcceptor::from(tls).accept(client),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    state.tls = true;

    // TLS phase.
    let (tls_read, tls_write) = tokio::io::split(tls_stream);
    let writer = Arc::new(tokio::sync::Mutex::new(tls_write));
    let (_stop_tx, stop_rx) = oneshot::channel();
    let mut forwarder = tokio::spawn(forward_replies(
        backend_reader,
        writer.clone(),
        channels,
        stop_rx,
    ));
    let mut reader = BufReader::new(tls_read);
    let result = loop {
        let line = tokio::select! {
            line = read_line(&mut reader, &mut buf) => line,
            _ = &mut forwarder => break Ok(()),
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        match state.judge(&line) {
            Verdict::Forward => {
                let sent = async {
                    backend_write.write_all(line.as_bytes()).await?;
                    backend_write.write_all(b"\r\n").await
                };
                if let Err(e) = sent.await {
                    break Err(e);
                }
            }
            Verdict::Refuse(reply) => write_reply(&writer, reply).await?,
            // judge() never answers StartTls once TLS is on.
            Verdict::StartTls => {}
        }
    };
    // Let libunftp see the end of the session, then close the client side cleanly.
    let _ = backend_write.shutdown().await;
    if !forwarder.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut forwarder).await;
    }
    forwarder.abort();
    let _ = writer.lock().await.shutdown().await;
    result
}

async fn write_reply<W: AsyncWrite + Unpin>(
    writer: &SharedWriter<W>,
    reply: &str,
) -> std::io::Result<()> {
    let mut w = writer.lock().await;
    w.write_all(reply.as_bytes()).await?;
    w.write_all(b"\r\n").await?;
    w.flush().await
}

/// One session's data connections: which loopback port of libunftp stands
/// behind which public passive port.
#[derive(Debug)]
pub struct DataChannels {
    /// Only this address may open the session's data connections.
    client_ip: IpAddr,
    /// Address the passive ports are opened on (where the client reached us).
    listen_ip: IpAddr,
    tls: Arc<rustls::ServerConfig>,
    /// libunftp's loopback port -> public port.
    ports: Mutex<HashMap<u16, u16>>,
}

/// How long a client has to open a data connection and finish its handshake.
const DATA_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Copy buffer per direction of a data connection.
const DATA_BUFFER: usize = 256 * 1024;

impl DataChannels {
    pub fn new(client_ip: IpAddr, listen_ip: IpAddr, tls: Arc<rustls::ServerConfig>) -> Arc<Self> {
        Arc::new(Self {
            client_ip,
            listen_ip,
            tls,
            ports: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces libunftp's loopback port in a `227` or `229` reply by the public one.
    fn rewrite_passive_reply(&self, line: &[u8]) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(line).ok()?;
        let map = |internal: u16| {
            self.ports
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&internal)
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
            let public = map(p1 * 256 + p2)?;
            return Some(
                format!(
                    "{}({h1},{h2},{h3},{h4},{},{}){}",
                    &text[..open],
                    public / 256,
                    public % 256,
                    &text[close + 1..]
                )
                .into_bytes(),
            );
        }
        if text.starts_with("229 ") {
            // 229 Entering Extended Passive Mode (|||port|)
            let open = text.find("(|||")?;
            let close = text[open..].find("|)")? + open;
            let public = map(text[open + 4..close].parse().ok()?)?;
            return Some(
                format!("{}(|||{public}|){}", &text[..open], &text[close + 2..]).into_bytes(),
            );
        }
        None
    }

    /// Serves one data connection: waits for the client on `public`, does the
    /// TLS handshake and pipes it to libunftp's loopback port `internal`.
    async fn serve(self: Arc<Self>, public: TcpListener, internal: SocketAddr) {
        let deadline = tokio::time::Instant::now() + DATA_CONNECT_TIMEOUT;
        let stream = loop {
            match tokio::time::timeout_at(deadline, public.accept()).await {
                Err(_) => return,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "data accept failed");
                    return;
                }
                Ok(Ok((stream, peer))) if peer.ip() == self.client_ip => break stream,
                Ok(Ok((_, peer))) => {
                    tracing::warn!(peer = %peer, client = %self.client_ip, "data connection from another address refused");
                }
            }
        };
        drop(public);
        let _ = stream.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.clone());
        let mut tls = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::warn!(client = %self.client_ip, error = %e, "data connection TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::warn!(client = %self.client_ip, "data connection TLS handshake timed out");
                return;
            }
        };
        let mut backend = match TcpStream::connect(internal).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach libunftp's data port");
                return;
            }
        };
        let _ = backend.set_nodelay(true);
        // Ends with close_notify to the client once libunftp closes its side.
        if let Err(e) = tokio::io::copy_bidirectional_with_sizes(
            &mut tls,
            &mut backend,
            DATA_BUFFER,
            DATA_BUFFER,
        )
        .await
        {
            tracing::debug!(client = %self.client_ip, error = %e, "data connection ended early");
        }
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
                && let Ok(listener) = socket.listen(4)
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
        self.channels
            .ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(internal_addr.port(), public_port);
        tokio::spawn(self.channels.clone().serve(public, internal_addr));
        Ok(internal)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn passive_replies_get_the_public_port() {
        let tls = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new())),
        );
        let channels =
            DataChannels::new(Ipv4Addr::LOCALHOST.into(), Ipv4Addr::LOCALHOST.into(), tls);
        channels.ports.lock().unwrap().insert(40001, 30005);
        channels.ports.lock().unwrap().insert(40002, 30006);
        let out = channels
            .rewrite_passive_reply(b"227 Entering Passive Mode (10,0,0,5,156,65)\r\n")
            .unwrap();
        assert_eq!(out, b"227 Entering Passive Mode (10,0,0,5,117,53)\r\n");
        let out = channels
            .rewrite_passive_reply(b"229 Entering Extended Passive Mode (|||40002|)\r\n")
            .unwrap();
        assert_eq!(out, b"229 Entering Extended Passive Mode (|||30006|)\r\n");
        assert!(
            channels
                .rewrite_passive_reply(b"229 Entering Extended Passive Mode (|||40002|)\r\n")
                .is_none()
        );
        assert!(channels.rewrite_passive_reply(b"226 Done\r\n").is_none());
    }

    #[test]
    fn commands_before_tls_and_data_before_prot_p_are_refused() {
        let mut s = State::default();
        assert!(matches!(s.judge("FEAT"), Verdict::Refuse(r) if r.starts_with("211-")));
        assert!(matches!(s.judge("USER alice"), Verdict::Refuse(r) if r.starts_with("530")));
        assert!(matches!(s.judge("PASS x"), Verdict::Refuse(r) if r.starts_with("530")));
        assert!(matches!(s.judge("EPSV"), Verdict::Refuse(r) if r.starts_with("530")));
        assert_eq!(s.judge("auth tls"), Verdict::StartTls);
        s.tls = true;
        assert_eq!(s.judge("USER alice"), Verdict::Forward);
        assert!(matches!(s.judge("EPSV"), Verdict::Refuse(r) if r.starts_with("521")));
        assert!(matches!(s.judge("PASV"), Verdict::Refuse(r) if r.starts_with("521")));
        assert!(matches!(s.judge("PROT C"), Verdict::Refuse(r) if r.starts_with("536")));
        assert!(matches!(s.judge("CCC"), Verdict::Refuse(r) if r.starts_with("534")));
        assert!(matches!(s.judge("AUTH TLS"), Verdict::Refuse(r) if r.starts_with("503")));
        assert!(
            matches!(s.judge("PORT 127,0,0,1,4,1"), Verdict::Refuse(r) if r.starts_with("502"))
        );
        assert!(matches!(s.judge("PROT P"), Verdict::Refuse(r) if r.starts_with("200")));
        assert_eq!(s.judge("EPSV"), Verdict::Forward);
        assert!(matches!(s.judge("PROT C"), Verdict::Refuse(_)));
        assert_eq!(s.judge("EPSV"), Verdict::Forward);
    }
}
