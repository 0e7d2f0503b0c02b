//! The control connection, with its TLS, in front of libunftp.
//!
//! libunftp 0.24 enforces `PROT P` only for `PASV` (a client sending `PROT C`
//! and `EPSV`, as curl does, gets a plaintext data connection), unwraps a
//! failed TLS handshake on a data connection (a panic, which ends the process
//! in a `panic = "abort"` build) and closes uploads without a TLS
//! `close_notify` (Python's ftplib then fails). So ftpsd does the TLS itself:
//! libunftp runs without TLS behind loopback connections ([`Loopback`]), and
//! [`relay`] terminates the control connection's TLS and passes commands
//! on, answering `AUTH`, `PBSZ`, `PROT` and `FEAT` itself and refusing
//! everything but `AUTH TLS`, `FEAT`, `NOOP`, `HELP`, `SYST`, `QUIT` before
//! TLS (`530`), `PROT` other than `P` (`536`), `CCC` (`534`), `PASV`/`EPSV`
//! before `PROT P` (`521`, RFC 4217) and active mode (`PORT`/`EPRT`, `502`).
//!
//! On the way back it rewrites the port of `227`/`229` replies (the data
//! connections are [`crate::data_channel`]'s), holds a transfer's `1xx`
//! while the client's data handshake is under way, answers a failed data
//! connection in place of that `1xx` or of the final reply, holds a
//! download's or listing's `226` until its data and `close_notify` were
//! written to the client's connection (`426` if that copy failed), takes a
//! session slot when libunftp answers `230` ([`crate::admission`]), and ends
//! a connection that has not logged in by the deadline or was evicted (`421`).
//!
//! Commands go to libunftp one at a time ([`crate::conversation`]), which
//! lets the relay answer some itself in order: a transfer (`RETR`, `LIST`,
//! `NLST`, `MLSD`) of a path that is not there gets a plain `550` with no
//! `150` before it ([`crate::paths`]; libunftp's current directory is asked
//! with an injected `PWD` after each `CWD`/`CDUP`), `MFMT` sets a
//! modification time, and `FEAT` lists [`crate::features::FEATURES`].

use crate::admission::Gate;
use crate::conversation::{Answer, Conversation};
use crate::data_channel::DataChannels;
use crate::data_port::{DataPort, PortState};
use crate::features::{Mfmt, REPLY_MFMT_SYNTAX};
use crate::paths::Target;
use crate::storage::SessionHome;
use crate::tls_sessions::SessionId;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
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
    /// `MFMT`, which the relay does itself.
    Mfmt,
}

/// The reply to `FEAT`, built once from [`crate::features::FEATURES`].
static FEAT_REPLY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(crate::features::feat_reply);

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
                "FEAT" => Verdict::Refuse(&FEAT_REPLY),
                "NOOP" | "HELP" | "SYST" | "QUIT" => Verdict::Forward,
                _ => Verdict::Refuse("530 TLS required: send AUTH TLS first."),
            };
        }
        match verb.as_str() {
            "AUTH" => Verdict::Refuse("503 TLS is already active."),
            "FEAT" => Verdict::Refuse(&FEAT_REPLY),
            "MFMT" => Verdict::Mfmt,
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

/// Reads one CRLF (or LF) line; `None` at end of stream. Cancel-safe: what
/// a cancelled call read stays in `buf` and starts the next call's line.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<String>> {
    loop {
        let room = MAX_LINE.saturating_sub(buf.len());
        if room == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "command line too long",
            ));
        }
        let n = (&mut *reader)
            .take(room as u64)
            .read_until(b'\n', buf)
            .await?;
        if buf.last() == Some(&b'\n') || (n == 0 && !buf.is_empty()) {
            let line = String::from_utf8_lossy(buf)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            buf.clear();
            return Ok(Some(line));
        }
        if n == 0 {
            return Ok(None);
        }
    }
}

use tokio::io::AsyncReadExt as _;

type SharedWriter<W> = Arc<tokio::sync::Mutex<W>>;

/// The passive port of the latest `227`/`229`, whose data connection the
/// next transfer uses.
#[derive(Debug, Default)]
struct Transfers {
    current: Option<Arc<DataPort>>,
}

impl Transfers {
    /// Decides what goes out for a `1xx` of libunftp's: the `1xx` itself
    /// once no data handshake is under way (`None`), or the reply of a data
    /// connection that failed, in its place.
    async fn on_preliminary(&self, channels: &DataChannels) -> Option<&'static str> {
        let settled = match &self.current {
            Some(port) => port.settle(channels.handshake_timeout()).await,
            None => PortState::Waiting,
        };
        match settled {
            PortState::Failed(reply) => Some(reply),
            PortState::Waiting | PortState::Connected => None,
        }
    }

    /// Whether a transfer's `2xx` may go out: a download's or listing's
    /// data must all have been written to the client's connection, its
    /// `close_notify` included; `false` if that copy was cut short.
    async fn delivered(&self) -> bool {
        match &self.current {
            Some(port) if !port.is_upload() && port.state() == PortState::Connected => {
                port.delivered().await
            }
            _ => true,
        }
    }
}

/// The code of a reply's last line (`"226"` of `226 Done`), `None` for a
/// continuation line of a multi-line reply.
fn final_code(line: &[u8]) -> Option<&str> {
    let code = std::str::from_utf8(line.get(..4)?).ok()?;
    (code.as_bytes()[..3].iter().all(u8::is_ascii_digit) && code.ends_with(' ')).then(|| &code[..3])
}

const REPLY_TOO_MANY_SESSIONS: &str = "421 Too many sessions, try again later.";
/// In place of a transfer's `226` when its data did not all reach the client.
const REPLY_NOT_DELIVERED: &str =
    "426 Data connection closed before all data reached the client; transfer aborted.";

/// Copies libunftp's replies to the client until libunftp closes or `stop`
/// fires, with failed data connections answered and logins admitted.
async fn forward_replies<R, W>(
    mut backend: BufReader<R>,
    client: SharedWriter<W>,
    session: Arc<Session>,
    mut stop: oneshot::Receiver<()>,
) -> (BufReader<R>, bool)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(256);
    let mut transfers = Transfers::default();
    let conversation = &session.conversation;
    loop {
        let failing = transfers
            .current
            .clone()
            .filter(|_| conversation.transfer_pending());
        let failed_port = async {
            match &failing {
                Some(port) => port.failed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = &mut stop => return (backend, false),
            reply = failed_port => {
                conversation.transfer_ended();
                if write_reply(&client, reply).await.is_err() {
                    return (backend, true);
                }
            }
            // Cancel-safe: a partial line stays in `buf` for the next round.
            read = backend.read_until(b'\n', &mut buf) => {
                match read {
                    Ok(0) | Err(_) => return (backend, true),
                    Ok(_) => {}
                }
                if let Some((rewritten, port)) = session.channels.rewrite_passive_reply(&buf) {
                    buf = rewritten;
                    transfers.current = Some(port);
                }
                let Some(code) = final_code(&buf).map(str::to_owned) else {
                    // A continuation line: the client's unless an injected
                    // command's reply (single lines, in practice) is next.
                    if conversation.next_is_injected() {
                        buf.clear();
                        continue;
                    }
                    if write_raw(&client, &buf).await.is_err() {
                        return (backend, true);
                    }
                    buf.clear();
                    continue;
                };
                let answer = conversation.answer(&code);
                if code == "230" {
                    if !session.gate.log_in() {
                        tracing::warn!(client = %session.client_ip, "login refused: too many sessions");
                        let _ = write_reply(&client, REPLY_TOO_MANY_SESSIONS).await;
                        return (backend, true);
                    }
                    if let Some(logged_in) = session.home.get() {
                        session.tls_id.logged_in(&logged_in.user);
                    }
                }
                match answer {
                    Answer::Injected(reply) => {
                        let _ = reply.send(String::from_utf8_lossy(&buf).trim_end().to_owned());
                        buf.clear();
                        continue;
                    }
                    Answer::Command if code.starts_with('1') => {
                        if let Some(reply) = transfers.on_preliminary(&session.channels).await {
                            buf.clear();
                            if write_reply(&client, reply).await.is_err() {
                                return (backend, true);
                            }
                            continue;
                        }
                        conversation.transfer_started();
                    }
                    Answer::TransferFinal if code.starts_with('2') => {
                        let delivered = tokio::select! {
                            delivered = transfers.delivered() => delivered,
                            _ = &mut stop => return (backend, false),
                        };
                        if !delivered {
                            tracing::info!(client = %session.client_ip, "transfer cut short on its way to the client: 426");
                            buf = format!("{REPLY_NOT_DELIVERED}\r\n").into_bytes();
                        }
                    }
                    _ => {}
                }
                if write_raw(&client, &buf).await.is_err() {
                    return (backend, true);
                }
                buf.clear();
            }
        }
    }
}

async fn write_raw<W: AsyncWrite + Unpin>(
    writer: &SharedWriter<W>,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut w = writer.lock().await;
    w.write_all(bytes).await?;
    w.flush().await
}

/// What a relayed session shares with its reply forwarder.
#[derive(Debug)]
pub struct Session {
    pub client_ip: std::net::IpAddr,
    pub channels: Arc<DataChannels>,
    pub gate: Gate,
    /// From connect to a successful login.
    pub login_timeout: Duration,
    /// The account and home once logged in (filled by the storage).
    pub home: Arc<SessionHome>,
    /// Names the account of this connection's TLS sessions at login.
    pub tls_id: Arc<SessionId>,
    pub conversation: Conversation,
}

/// Why the command loop stopped before the client or libunftp ended the session.
const REPLY_LOGIN_TIMEOUT: &str = "421 Login timeout: log in sooner next time.";
const REPLY_EVICTED: &str = "421 Too many connections are not logged in; closing the oldest.";

/// Waits for the end of the login window, if the session has not logged in.
async fn login_deadline(session: &Session, deadline: tokio::time::Instant) -> &'static str {
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => REPLY_LOGIN_TIMEOUT,
        () = session.gate.evicted() => REPLY_EVICTED,
    }
}

/// Relays one client session. `backend` is libunftp's end of a loopback pair.
pub async fn relay(
    client: TcpStream,
    backend: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    session: Arc<Session>,
) -> std::io::Result<()> {
    let deadline = tokio::time::Instant::now() + session.login_timeout;
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
        session.clone(),
        stop_rx,
    ));
    let mut reader = BufReader::new(client_read);
    loop {
        let line = tokio::select! {
            line = read_line(&mut reader, &mut buf) => line?,
            _ = &mut forwarder => return Ok(()),
            reply = login_deadline(&session, deadline) => {
                write_reply(&writer, reply).await?;
                return Ok(());
            }
        };
        let Some(line) = line else { return Ok(()) };
        tokio::select! {
            () = session.conversation.wait_turn(false) => {}
            _ = &mut forwarder => return Ok(()),
        }
        match state.judge(&line) {
            Verdict::Forward => {
                session.conversation.passed_on();
                write_line(&mut backend_write, &line).await?;
            }
            Verdict::Refuse(reply) => write_reply(&writer, reply).await?,
            // judge() refuses MFMT before TLS.
            Verdict::Mfmt => {}
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
    let handshake_until = deadline.min(tokio::time::Instant::now() + Duration::from_secs(30));
    let tls_stream = tokio::time::timeout_at(
        handshake_until,
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
        session.clone(),
        stop_rx,
    ));
    let mut reader = BufReader::new(tls_read);
    let mut commands = Commands {
        session: &session,
        backend: &mut backend_write,
        cwd: None,
    };
    let result = loop {
        let logged_in = session.gate.logged_in();
        let line = tokio::select! {
            line = read_line(&mut reader, &mut buf) => line,
            _ = &mut forwarder => break Ok(()),
            reply = login_deadline(&session, deadline), if !logged_in => {
                if session.gate.logged_in() {
                    continue; // logged in while the deadline was reached
                }
                tracing::info!(client = %session.client_ip, reply, "closing a connection that did not log in");
                let _ = write_reply(&writer, reply).await;
                break Ok(());
            }
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        tokio::select! {
            () = session.conversation.wait_turn(is_abort(&line)) => {}
            _ = &mut forwarder => break Ok(()),
        }
        let reply = match state.judge(&line) {
            Verdict::Forward => match commands.pass_on(&line).await {
                Ok(None) => continue,
                Ok(Some(reply)) => reply,
                Err(e) => break Err(e),
            },
            Verdict::Refuse(reply) => reply.into(),
            Verdict::Mfmt => commands.mfmt(&line).await,
            // judge() never answers StartTls once TLS is on.
            Verdict::StartTls => continue,
        };
        write_reply(&writer, &reply).await?;
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

/// `ABOR`, which may go to libunftp during a transfer; some clients send
/// it after Telnet interrupt bytes.
fn is_abort(line: &str) -> bool {
    let command = line.trim_start_matches(|c: char| !c.is_ascii_alphabetic());
    crate::paths::split(command).0 == "ABOR"
}

/// What the TLS phase does with commands for libunftp, and with those the
/// relay answers from the session's home.
struct Commands<'a, W> {
    session: &'a Session,
    backend: &'a mut W,
    /// libunftp's current directory, if known since the last `CWD`/`CDUP`.
    cwd: Option<PathBuf>,
}

impl<W: AsyncWrite + Unpin> Commands<'_, W> {
    /// Passes `line` on to libunftp, or answers it (a transfer of a path
    /// that is not there: `550`, with no `150` first).
    async fn pass_on(
        &mut self,
        line: &str,
    ) -> std::io::Result<Option<std::borrow::Cow<'static, str>>> {
        let (verb, _) = crate::paths::split(line);
        if matches!(verb.as_str(), "CWD" | "XCWD" | "CDUP" | "XCUP") {
            self.cwd = None;
        }
        if let Some(target) = crate::paths::transfer_target(line)
            && let Some(reply) = self.missing(target).await
        {
            return Ok(Some(reply.into()));
        }
        self.session.channels.command_forwarded(&verb);
        self.session.conversation.passed_on();
        write_line(self.backend, line).await?;
        Ok(None)
    }

    /// The reply for a target that is not there; `None` if it is there, or
    /// the session has not logged in (libunftp refuses it then).
    async fn missing(&mut self, target: Target) -> Option<&'static str> {
        let home = self.session.home.get()?.home.clone();
        let cwd = self.current_dir().await?;
        let reply = target.missing_reply();
        let exists = tokio::task::spawn_blocking(move || target.exists(&home, &cwd))
            .await
            .unwrap_or(true);
        (!exists).then_some(reply)
    }

    /// libunftp's current directory, asked with an injected `PWD` whose
    /// reply the client does not see. Only when nothing else is awaited
    /// from libunftp (the caller has its turn).
    async fn current_dir(&mut self) -> Option<PathBuf> {
        if let Some(dir) = &self.cwd {
            return Some(dir.clone());
        }
        let reply = self.session.conversation.inject();
        write_line(self.backend, "PWD").await.ok()?;
        let dir = crate::paths::pwd_reply_dir(&reply.await.ok()?)?;
        self.cwd = Some(dir.clone());
        Some(dir)
    }

    /// `MFMT YYYYMMDDHHMMSS path`: sets a file's modification time.
    async fn mfmt(&mut self, line: &str) -> std::borrow::Cow<'static, str> {
        let Some(home) = self.session.home.get().map(|l| l.home.clone()) else {
            return "530 Not logged in.".into();
        };
        let Some(mfmt) = Mfmt::parse(crate::paths::split(line).1) else {
            return REPLY_MFMT_SYNTAX.into();
        };
        let Some(cwd) = self.current_dir().await else {
            return "451 Cannot tell the current directory.".into();
        };
        let path = crate::paths::in_home(&crate::paths::resolve(&cwd, &mfmt.path));
        let time = mfmt.time;
        let set =
            tokio::task::spawn_blocking(move || crate::storage::set_modified(&home, &path, time))
                .await;
        match set {
            Ok(Ok(())) => mfmt.reply().into(),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, path = mfmt.path, "MFMT failed");
                "550 Cannot set the modification time.".into()
            }
            Err(_) => "451 Local error.".into(),
        }
    }
}

async fn write_reply<W: AsyncWrite + Unpin>(
    writer: &SharedWriter<W>,
    reply: &str,
) -> std::io::Result<()> {
    let mut w = writer.lock().await;
    write_line(&mut *w, reply).await?;
    w.flush().await
}

/// Writes `line` and its CRLF in one write: a client that reads the reply to
/// AUTH TLS with a single read (OpenSSL's `s_client -starttls ftp`, testssl.sh)
/// would otherwise take a CRLF arriving apart for the start of the handshake.
async fn write_line<W: AsyncWrite + Unpin>(w: &mut W, line: &str) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 2);
    bytes.extend_from_slice(line.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    w.write_all(&bytes).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
