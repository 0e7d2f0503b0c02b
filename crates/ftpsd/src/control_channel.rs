//! The client's control connection, guarded in front of libunftp.
//!
//! libunftp 0.24 enforces `PROT P` only for `PASV`: a client that sends
//! `PROT C` and `EPSV` (curl does) gets a plaintext data connection. So ftpsd
//! terminates the control connection's TLS itself and relays the commands to
//! libunftp over a loopback connection, refusing on the way:
//! - everything but `AUTH TLS`, `FEAT`, `NOOP`, `HELP`, `SYST`, `QUIT` before
//!   TLS (`530`), so no login and no password travels in clear;
//! - `PROT` other than `P` (`536`), `CCC` (`534`), a second `AUTH` (`503`);
//! - `PASV`, `EPSV`, `PORT`, `EPRT` before `PROT P` (`521`, RFC 4217).
//!
//! Data connections go straight to libunftp, which encrypts them with the same
//! rustls configuration, so they can resume the control connection's session.

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
    Refuse(&'static str),
}

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
                "FEAT" | "NOOP" | "HELP" | "SYST" | "QUIT" => Verdict::Forward,
                _ => Verdict::Refuse("530 TLS required: send AUTH TLS first."),
            };
        }
        match verb.as_str() {
            "AUTH" => Verdict::Refuse("503 TLS is already active."),
            "CCC" => Verdict::Refuse("534 The control connection stays encrypted."),
            "PROT" if arg == "P" => {
                self.prot_p = true;
                Verdict::Forward
            }
            "PROT" => Verdict::Refuse("536 Only PROT P (private) is supported."),
            "PASV" | "EPSV" | "PORT" | "EPRT" | "LPSV" | "LPRT" if !self.prot_p => Verdict::Refuse(
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
    let mut forwarder = tokio::spawn(forward_replies(backend_reader, writer.clone(), stop_rx));
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

/// Binds passive data listeners on the client-facing address (libunftp would
/// use the loopback address it sees) in the configured port range, trying
/// every port once from a random start.
#[derive(Debug)]
pub struct PassiveBinder {
    pub ip: IpAddr,
}

#[async_trait::async_trait]
impl libunftp::options::Binder for PassiveBinder {
    async fn bind(
        &mut self,
        _seen: IpAddr,
        ports: std::ops::RangeInclusive<u16>,
    ) -> std::io::Result<TcpSocket> {
        let (first, last) = (*ports.start(), *ports.end());
        let span = u32::from(last - first) + 1;
        let mut seed = [0u8; 4];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| std::io::Error::other("no random"))?;
        let start = u32::from_ne_bytes(seed) % span;
        for i in 0..span {
            let port = first + ((start + i) % span) as u16;
            let socket = if self.ip.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            if socket.bind(SocketAddr::new(self.ip, port)).is_ok() {
                return Ok(socket);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "all passive ports are in use",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_before_tls_and_data_before_prot_p_are_refused() {
        let mut s = State::default();
        assert_eq!(s.judge("FEAT"), Verdict::Forward);
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
        assert_eq!(s.judge("PROT P"), Verdict::Forward);
        assert_eq!(s.judge("EPSV"), Verdict::Forward);
        assert!(matches!(s.judge("PROT C"), Verdict::Refuse(_)));
        assert_eq!(s.judge("EPSV"), Verdict::Forward);
    }
}
