//! One passive port of a session, between the relay of the control
//! connection ([`crate::control_channel`]) and the task that serves the
//! port ([`crate::data_channel`]): where its data connection stands, when
//! a transfer's preliminary `1xx` reply may go out, and whether the data
//! connection gives the client a new TLS session ticket.
//!
//! It also records whether the copy to the client completed
//! ([`DataPort::delivered`]), which a download's `226` waits for, and holds
//! a file transfer's established data connection until the session's
//! storage takes it ([`DataPort::take_stream`]): the bytes of `RETR`,
//! `STOR` and `APPE` go between the file and the client's TLS stream in
//! [`crate::storage`], not through libunftp (see [`crate::data_channel`]).
//!
//! Clients set up a data connection in three ways, and each needs the `1xx`
//! and the ticket handled differently:
//!
//! - curl sends its ClientHello as soon as it connects, before the transfer
//!   command, and finishes the handshake without waiting for the `1xx`. It
//!   uses each TLS 1.3 ticket once and reads an upload's connection only
//!   once, just before closing it: the upload's ticket must be in its socket
//!   before it starts sending, or its next data connection has no ticket to
//!   offer and is refused. So the `1xx` of such an upload waits until the
//!   handshake is done and the ticket written ([`HELLO_FIRST_WAIT`] at most).
//! - lftp sends the upload command, then its ClientHello, and finishes the
//!   handshake only after the `1xx`; it never reads an upload's connection,
//!   and unread data at close makes the kernel reset the connection, cutting
//!   off the end of the upload. Its upload connections get no ticket.
//! - Python's ftplib and Go's (rclone) start the handshake after the `1xx`,
//!   and Go never reads an upload's connection either: no ticket for those
//!   uploads.
//!
//! Hence the rule: a data connection gives one ticket, except for an upload
//! whose `1xx` went out before the client finished its handshake. And a
//! `1xx` waits while the server owes the client an answer to handshake bytes
//! it sent, so that a connection that fails at once (plain text, another
//! user's session) is answered in place of the `1xx`.

use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

/// A data connection once its TLS handshake is done.
pub type DataStream = TlsStream<Watched>;

/// How long an upload's `1xx` waits for the handshake of a client that sent
/// its ClientHello before the upload command. curl finishes within a round
/// trip; a client that sent it first but waits for the `1xx` (none known)
/// loses this much, and gets no ticket for the upload.
pub const HELLO_FIRST_WAIT: Duration = Duration::from_secs(1);

/// Where a passive port's data connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    /// Waiting for the client's connection or for its handshake.
    Waiting,
    /// The session's data connection is established.
    Connected,
    /// Refused or failed: the reply that ends its transfer.
    Failed(&'static str),
}

/// What the transfer command forwarded for a port moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// `RETR`, `STOR`, `APPE`, `STOU`: moved by the storage itself.
    File,
    /// `LIST`, `NLST`, `MLSD`: written by libunftp, relayed.
    Listing,
}

/// Where a file transfer's data connection is, for the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handover {
    /// Not established yet (or not a file transfer yet).
    Pending,
    /// Waiting in [`DataPort::parked`], or taken.
    Parked,
    /// The port ended without one.
    None,
}

/// One passive port of a session.
#[derive(Debug)]
pub struct DataPort {
    state: watch::Sender<PortState>,
    /// The connections accepted while [`PortState::Waiting`].
    accepted: Mutex<Vec<Arc<Accepted>>>,
    /// The transfer command forwarded for this port is an upload.
    upload: AtomicBool,
    /// ... and the client had sent handshake bytes before it.
    hello_first: AtomicBool,
    /// The transfer's `1xx` has gone out.
    preliminary_sent: AtomicBool,
    /// Whether everything libunftp sent reached the client's connection,
    /// `close_notify` included (`None`: not known yet).
    delivered: watch::Sender<Option<bool>>,
    /// The transfer command forwarded for this port (`None`: none yet).
    transfer: watch::Sender<Option<Transfer>>,
    /// A file transfer's data connection, until the storage takes it.
    parked: Mutex<Option<Box<DataStream>>>,
    handover: watch::Sender<Handover>,
}

impl DataPort {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: watch::Sender::new(PortState::Waiting),
            accepted: Mutex::new(Vec::new()),
            upload: AtomicBool::new(false),
            hello_first: AtomicBool::new(false),
            preliminary_sent: AtomicBool::new(false),
            delivered: watch::Sender::new(None),
            transfer: watch::Sender::new(None),
            parked: Mutex::new(None),
            handover: watch::Sender::new(Handover::Pending),
        })
    }

    /// Where the port's data connection stands now.
    pub fn state(&self) -> PortState {
        *self.state.borrow()
    }

    /// The copy from libunftp to the client ended: `true` when all of it
    /// was written to the client's connection and `close_notify` sent.
    pub fn copied_to_client(&self, complete: bool) {
        self.delivered.send_replace(Some(complete));
    }

    /// Waits for the end of the copy to the client (see
    /// [`DataPort::copied_to_client`]); `false` if it was cut short.
    pub async fn delivered(&self) -> bool {
        let mut delivered = self.delivered.subscribe();
        match delivered.wait_for(Option::is_some).await {
            Ok(done) => done.unwrap_or(false),
            // The sender lives as long as `self`.
            Err(_) => false,
        }
    }

    fn accepted(&self) -> MutexGuard<'_, Vec<Arc<Accepted>>> {
        self.accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Watches a connection accepted on the port; `None` if its descriptor
    /// cannot be duplicated (no descriptor left).
    pub fn accept(&self, stream: TcpStream) -> std::io::Result<Watched> {
        let fd = std::os::fd::AsFd::as_fd(&stream).try_clone_to_owned()?;
        let seen = Arc::new(Accepted {
            fd,
            began: AtomicBool::new(false),
            busy: AtomicBool::new(false),
        });
        self.accepted().push(seen.clone());
        Ok(Watched { stream, seen })
    }

    /// Records the port's outcome; its watched connections are let go.
    pub fn decide(&self, state: PortState) {
        let mut accepted = self.accepted();
        self.state.send_replace(state);
        accepted.clear();
    }

    /// The relay forwarded the transfer command for this port: an upload
    /// or not, a file or a listing.
    pub fn command_forwarded(&self, upload: bool, transfer: Transfer) {
        let hello_first = upload && self.accepted().iter().any(|a| a.began_or_waiting());
        self.hello_first.store(hello_first, Ordering::Release);
        self.upload.store(upload, Ordering::Release);
        self.transfer.send_replace(Some(transfer));
    }

    /// What the port's transfer moves, once its command was forwarded.
    pub async fn transfer(&self) -> Transfer {
        let mut transfer = self.transfer.subscribe();
        let known = transfer
            .wait_for(Option::is_some)
            .await
            .map(|t| t.unwrap_or(Transfer::Listing));
        match known {
            Ok(t) => t,
            // The sender lives as long as `self`.
            Err(_) => std::future::pending().await,
        }
    }

    /// The port's transfer, if its command was forwarded.
    pub fn transfer_now(&self) -> Option<Transfer> {
        *self.transfer.borrow()
    }

    fn parked(&self) -> MutexGuard<'_, Option<Box<DataStream>>> {
        self.parked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Leaves a file transfer's established data connection for the storage.
    pub fn park(&self, stream: Box<DataStream>) {
        *self.parked() = Some(stream);
        self.handover.send_replace(Handover::Parked);
    }

    /// The port will give no data connection to the storage.
    pub fn no_handover(&self) {
        self.handover.send_if_modified(|h| {
            let pending = *h == Handover::Pending;
            if pending {
                *h = Handover::None;
            }
            pending
        });
    }

    /// Takes the parked data connection back if the storage did not
    /// (libunftp ended the transfer without asking the storage for it).
    pub fn reclaim(&self) -> Option<Box<DataStream>> {
        self.parked().take()
    }

    /// The data connection of this port's file transfer, waiting up to
    /// `patience` for it to be parked (the storage may be asked for the
    /// file a moment before); `None` if the port has none.
    pub async fn take_stream(&self, patience: Duration) -> Option<Box<DataStream>> {
        let mut handover = self.handover.subscribe();
        let _ =
            tokio::time::timeout(patience, handover.wait_for(|h| *h != Handover::Pending)).await;
        self.parked().take()
    }

    pub fn is_upload(&self) -> bool {
        self.upload.load(Ordering::Acquire)
    }

    /// Whether a data connection finishing its handshake now gives a ticket.
    pub fn gives_ticket(&self) -> bool {
        !(self.is_upload() && self.preliminary_sent.load(Ordering::Acquire))
    }

    /// Waits until the transfer's `1xx` may go out (see the module
    /// documentation) and returns the port's state then; the caller sends
    /// the `1xx` unless it is [`PortState::Failed`].
    pub async fn settle(&self, handshake_timeout: Duration) -> PortState {
        let hello_first = self.is_upload() && self.hello_first.load(Ordering::Acquire);
        let limit = if hello_first {
            HELLO_FIRST_WAIT
        } else {
            handshake_timeout
        };
        let mut state = self.state.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        let settled = loop {
            let now = *state.borrow_and_update();
            let holding = hello_first || self.accepted().iter().any(|a| a.owes_answer());
            if now != PortState::Waiting || !holding {
                break now;
            }
            if tokio::time::timeout_at(deadline, state.changed())
                .await
                .is_err()
            {
                break *state.borrow();
            }
        };
        if !matches!(settled, PortState::Failed(_)) {
            self.preliminary_sent.store(true, Ordering::Release);
        }
        settled
    }

    /// Waits until the port has failed; returns the reply that says so.
    pub async fn failed(&self) -> &'static str {
        let mut state = self.state.subscribe();
        match state
            .wait_for(|s| matches!(s, PortState::Failed(_)))
            .await
            .map(|s| *s)
        {
            Ok(PortState::Failed(reply)) => reply,
            // The sender lives as long as `self`: this never ends otherwise.
            _ => std::future::pending().await,
        }
    }
}

/// A connection accepted on a passive port, seen from outside its handshake.
#[derive(Debug)]
struct Accepted {
    /// A duplicate of its descriptor, to peek at without reading.
    fd: OwnedFd,
    /// Its handshake has read bytes.
    began: AtomicBool,
    /// Its handshake has read bytes it has not answered yet.
    busy: AtomicBool,
}

impl Accepted {
    /// Bytes wait in its socket. The duplicate shares tokio's non-blocking
    /// mode: the peek never waits.
    fn has_bytes(&self) -> bool {
        let mut byte = [std::mem::MaybeUninit::uninit()];
        socket2::SockRef::from(&self.fd)
            .peek(&mut byte)
            .is_ok_and(|n| n > 0)
    }

    fn began_or_waiting(&self) -> bool {
        self.began.load(Ordering::Acquire) || self.has_bytes()
    }

    /// The client sent handshake bytes the server has not answered yet.
    fn owes_answer(&self) -> bool {
        self.busy.load(Ordering::Acquire) || self.has_bytes()
    }
}

/// A data connection's socket that records whether its last read brought
/// bytes (the handshake is working on them) or found none (it waits for
/// the client).
#[derive(Debug)]
pub struct Watched {
    stream: TcpStream,
    seen: Arc<Accepted>,
}

impl Watched {
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if polled.is_ready() {
            self.seen.began.store(true, Ordering::Release);
        }
        self.seen.busy.store(polled.is_ready(), Ordering::Release);
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    /// rustls hands over several TLS records at once: one system call.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
