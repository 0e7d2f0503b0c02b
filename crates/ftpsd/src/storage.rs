//! The storage back end: `unftp-sbe-fs` confined to the user's home, with
//! file transfers done in large chunks.
//!
//! `unftp-sbe-fs` reads and writes files through 4 KiB buffers, and every
//! tokio file operation is a hop to the blocking thread pool, so a 1 GiB
//! transfer costs 262 144 of them. Downloads and uploads here open the file
//! the same confined way (`cap-std`, beneath the home directory: no `..`, no
//! absolute path, no symlink out) and move 32 KiB (downloads, mostly from
//! the page cache without a thread hop) or 256 KiB (uploads) per operation;
//! everything else is delegated to `unftp-sbe-fs`.
//!
//! The bytes of a file transfer do not pass through libunftp. libunftp
//! builds one storage per control connection, so the storage can reach the
//! session's data connections ([`DataLink`]): when libunftp asks it to send
//! a file (`RETR`) or to store one (`STOR`, `APPE`, `STOU`), it takes the
//! established TLS data connection that [`crate::data_channel`] parked in
//! the current passive port and copies between the file and that TLS stream
//! itself, then closes it (`close_notify`); libunftp's own (loopback) data
//! connection carries nothing, and libunftp sends the replies as usual, from
//! what the storage returns: the byte count for its transfer log, or an
//! error. A download is recorded as delivered only once all of it and the
//! `close_notify` were written to the client's connection (its `226`
//! waits for that, [`crate::data_port`]). The bytes are counted in
//! `ftpsd_file_bytes_total`, since libunftp's byte counters no longer see them.

use crate::accounts::Account;
use crate::data_channel::DataChannels;
use crate::data_port::{DataPort, DataStream};
use crate::metrics::Metrics;
use async_trait::async_trait;
use std::fmt::Debug;
use std::io::SeekFrom;
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use unftp_core::storage::{Error, ErrorKind, Fileinfo, Result, StorageBackend};
use unftp_sbe_fs::{Filesystem, Meta};

/// Bytes per file write of an upload: one trip to the blocking pool each,
/// and one buffer of this size per transfer.
const CHUNK: usize = 256 * 1024;
/// Bytes per file read of a download: read (mostly from the page cache,
/// without a thread hop), encrypted and sent while they are in the CPU's
/// cache. Measured on 50 concurrent 64 MiB downloads (bench/ftpsd.sh): 32 KiB
/// took the least CPU per GiB of 16, 32, 64 and 256 KiB, by 5 to 10 %.
const SEND_CHUNK: usize = 32 * 1024;

/// One session's storage.
#[derive(Debug)]
pub struct HomeStorage {
    inner: Filesystem,
    root: PathBuf,
    home: Option<Arc<cap_std::fs::Dir>>,
    /// Where uploads are written before they are renamed into the home.
    staging: Option<Arc<cap_std::fs::Dir>>,
    /// Shared with the session's relay.
    session: Arc<SessionHome>,
    /// The session's data connections, for file transfers.
    data: Option<DataLink>,
}

/// What the storage of a session needs to move file bytes itself.
#[derive(Debug, Clone)]
pub struct DataLink {
    pub channels: Arc<DataChannels>,
    pub metrics: Metrics,
}

/// How long a download's connection is read after its `close_notify`, for
/// the client's own close: closing with its bytes unread would reset it.
const LINGER: std::time::Duration = std::time::Duration::from_secs(30);

/// The logged-in account and its home, shared with the session's relay
/// ([`crate::control_channel`]), which checks paths and sets modification
/// times through the same confined directory.
#[derive(Debug, Default)]
pub struct SessionHome {
    logged_in: std::sync::OnceLock<LoggedIn>,
}

#[derive(Debug)]
pub struct LoggedIn {
    pub user: String,
    pub home: Arc<cap_std::fs::Dir>,
}

impl SessionHome {
    /// Set once libunftp has logged the session in.
    pub fn get(&self) -> Option<&LoggedIn> {
        self.logged_in.get()
    }
}

/// Sets the modification time of the file or directory at `path` beneath
/// `home` (`MFMT`); symlinks are followed inside the home only.
pub fn set_modified(
    home: &cap_std::fs::Dir,
    path: &Path,
    time: std::time::SystemTime,
) -> std::io::Result<()> {
    let file = if home.metadata(path)?.is_dir() {
        home.open_dir(path)?.into_std_file()
    } else {
        home.open(path)?.into_std()
    };
    file.set_modified(time)
}

/// The staging directory, in the data root: no user name starts with a dot,
/// and a listing of a home never shows half-written files.
pub const STAGING: &str = ".uploads";

/// Makes the staging directory (mode 0700) if it is missing.
pub fn prepare_staging(data_root: &Path) -> std::io::Result<()> {
    let dir = data_root.join(STAGING);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        }
        Err(e) => Err(e),
    }
}

impl HomeStorage {
    pub fn new(root: PathBuf, session: Arc<SessionHome>) -> std::io::Result<Self> {
        Ok(Self {
            inner: Filesystem::new(root.clone())?,
            root,
            home: None,
            staging: None,
            session,
            data: None,
        })
    }

    /// File transfers go straight between the file and the session's data
    /// connections (see the module documentation).
    pub fn with_data(mut self, data: DataLink) -> Self {
        self.data = Some(data);
        self
    }

    /// The established data connection of the file transfer libunftp runs
    /// now, and its port; `None` without a [`DataLink`].
    async fn data_stream(&self) -> Result<Option<(Box<DataStream>, Arc<DataPort>, Metrics)>> {
        let Some(link) = &self.data else {
            return Ok(None);
        };
        let port = link
            .channels
            .current_port()
            .ok_or_else(|| Error::from(ErrorKind::LocalError))?;
        match port.take_stream(link.channels.handshake_timeout()).await {
            Some(stream) => Ok(Some((stream, port, link.metrics.clone()))),
            None => {
                tracing::warn!("no data connection for the file transfer");
                Err(Error::from(ErrorKind::LocalError))
            }
        }
    }

    fn home(&self) -> Result<Arc<cap_std::fs::Dir>> {
        self.home
            .clone()
            .ok_or_else(|| Error::from(ErrorKind::PermissionDenied))
    }
}

/// Client paths are relative to the home; a leading `/` means the home itself.
fn relative(path: &Path) -> PathBuf {
    match path.strip_prefix("/") {
        Ok(p) if p.as_os_str().is_empty() => PathBuf::from("."),
        Ok(p) => p.to_path_buf(),
        Err(_) => path.to_path_buf(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::LocalError, e))?
        .map_err(Error::from)
}

#[async_trait]
impl StorageBackend<Account> for HomeStorage {
    type Metadata = Meta;

    fn enter(&mut self, user: &Account) -> std::io::Result<()> {
        self.inner.enter(user)?;
        let relative_home = user
            .home
            .strip_prefix(&self.root)
            .map_err(|_| std::io::Error::other("home is not under the data root"))?;
        let root = cap_std::fs::Dir::open_ambient_dir(&self.root, cap_std::ambient_authority())?;
        let home = Arc::new(root.open_dir(relative_home)?);
        self.home = Some(home.clone());
        self.staging = Some(Arc::new(root.open_dir(STAGING)?));
        // A session logs in once (libunftp refuses a second login).
        let _ = self.session.logged_in.set(LoggedIn {
            user: user.name.clone(),
            home,
        });
        Ok(())
    }

    fn supported_features(&self) -> u32 {
        StorageBackend::<Account>::supported_features(&self.inner)
    }

    async fn metadata<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &Account,
        path: P,
    ) -> Result<Meta> {
        self.inner.metadata(user, path).await
    }

    async fn list<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &Account,
        path: P,
    ) -> Result<Vec<Fileinfo<PathBuf, Meta>>> {
        self.inner.list(user, path).await
    }

    async fn get_into<'a, P, W: ?Sized>(
        &self,
        _user: &Account,
        path: P,
        start_pos: u64,
        output: &'a mut W,
    ) -> Result<u64>
    where
        W: tokio::io::AsyncWrite + Unpin + Sync + Send,
        P: AsRef<Path> + Send + Debug,
    {
        let Some((mut tls, port, metrics)) = self.data_stream().await? else {
            let file = self.open_for_reading(path.as_ref(), start_pos).await?;
            return Ok(send_file(file, output, &mut 0).await?);
        };
        let file = match self.open_for_reading(path.as_ref(), start_pos).await {
            Ok(file) => file,
            Err(e) => {
                port.copied_to_client(false);
                crate::data_channel::close(*tls).await;
                return Err(e);
            }
        };
        let mut sent = 0;
        let copied = async {
            send_file(file, &mut *tls, &mut sent).await?;
            tls.shutdown().await
        }
        .await;
        metrics.file_bytes(true, sent);
        port.copied_to_client(copied.is_ok());
        match copied {
            Ok(()) => {
                tokio::spawn(linger(tls));
                Ok(sent)
            }
            Err(e) => {
                tracing::info!(error = %e, sent, "download cut short on its way to the client");
                Err(Error::new(ErrorKind::ConnectionClosed, e))
            }
        }
    }

    async fn get<P: AsRef<Path> + Send + Debug>(
        &self,
        _user: &Account,
        path: P,
        start_pos: u64,
    ) -> Result<Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin>> {
        let file = self.open_for_reading(path.as_ref(), start_pos).await?;
        let mut file = tokio::fs::File::from_std(file);
        file.set_max_buf_size(CHUNK);
        Ok(Box::new(file))
    }

    /// A new upload is written to a file of the staging directory and
    /// renamed over its target once complete: a failed one leaves the old file as it
    /// was. A full disk or quota removes what was written (`452`/`552`);
    /// a client that breaks off keeps what arrived (renamed into place, as
    /// other servers leave it) so that it can resume with `REST`. A resumed
    /// upload (`REST n`) writes in place from `n` and is cut back to `n`
    /// when the disk is full. The bytes come from the client's TLS data
    /// connection, not from libunftp's `input` (which carries none).
    async fn put<
        P: AsRef<Path> + Send + Debug,
        R: tokio::io::AsyncRead + Send + Sync + Unpin + 'static,
    >(
        &self,
        _user: &Account,
        input: R,
        path: P,
        start_pos: u64,
    ) -> Result<u64> {
        let Some((mut tls, _port, metrics)) = self.data_stream().await? else {
            return self.store(input, path.as_ref(), start_pos).await;
        };
        let mut counted = Counted {
            inner: &mut tls,
            count: 0,
        };
        let stored = self.store(&mut counted, path.as_ref(), start_pos).await;
        metrics.file_bytes(false, counted.count);
        // The file is in place (or refused): now the client's close_notify.
        crate::data_channel::close(*tls).await;
        stored
    }

    async fn del<P: AsRef<Path> + Send + Debug>(&self, user: &Account, path: P) -> Result<()> {
        self.inner.del(user, path).await
    }

    async fn mkd<P: AsRef<Path> + Send + Debug>(&self, user: &Account, path: P) -> Result<()> {
        self.inner.mkd(user, path).await
    }

    async fn rename<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &Account,
        from: P,
        to: P,
    ) -> Result<()> {
        self.inner.rename(user, from, to).await
    }

    async fn rmd<P: AsRef<Path> + Send + Debug>(&self, user: &Account, path: P) -> Result<()> {
        self.inner.rmd(user, path).await
    }

    async fn cwd<P: AsRef<Path> + Send + Debug>(&self, user: &Account, path: P) -> Result<()> {
        self.inner.cwd(user, path).await
    }
}

impl HomeStorage {
    /// Stores what `input` carries at `path` (see [`HomeStorage::put`]).
    async fn store<R: AsyncRead + Unpin>(
        &self,
        input: R,
        path: &Path,
        start_pos: u64,
    ) -> Result<u64> {
        let home = self.home()?;
        let path = relative(path);
        if start_pos > 0 {
            return resume_upload(home, path, input, start_pos).await;
        }
        let name = path
            .file_name()
            .ok_or_else(|| Error::from(ErrorKind::FileNameNotAllowedError))?
            .to_string_lossy()
            .into_owned();
        // Renaming over a symbolic link would replace the link; writing
        // through it is what the confinement refuses: no upload onto a link.
        let is_link = {
            let (home, path) = (home.clone(), path.clone());
            blocking(move || match home.symlink_metadata(path) {
                Ok(meta) => Ok(meta.is_symlink()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            })
            .await?
        };
        if is_link {
            return Err(Error::from(ErrorKind::PermissionDenied));
        }
        // The target's directory, confined to the home like every path here:
        // refused before a byte is written.
        {
            let (home, parent) = (home.clone(), path.parent().map(Path::to_path_buf));
            blocking(move || match parent {
                Some(dir) if !dir.as_os_str().is_empty() => home.metadata(dir).map(drop),
                _ => Ok(()),
            })
            .await?;
        }
        let staging_dir = self
            .staging
            .clone()
            .ok_or_else(|| Error::from(ErrorKind::PermissionDenied))?;
        let staging = format!("{}-{name}", random_suffix()?);
        let file = {
            let (dir, staging) = (staging_dir.clone(), staging.clone());
            blocking(move || {
                let mut options = cap_std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                dir.open_with(staging, &options)
            })
            .await?
        };
        let written = write_all(file.into_std(), input).await;
        let keep = match &written {
            Ok(_) => true,
            Err(e) => !out_of_space(e),
        };
        let (from, to) = (staging.clone(), path.clone());
        blocking(move || {
            let renamed = if keep {
                staging_dir.rename(&from, &home, &to)
            } else {
                Ok(())
            };
            if !keep || renamed.is_err() {
                staging_dir.remove_file(&from)?;
            }
            renamed
        })
        .await?;
        written.map_err(storage_error)
    }
}

/// Copies `file` to `output` a chunk at a time with one buffer: one copy of
/// the data in memory. A chunk that the page cache holds is read at once
/// (`preadv2` with `RWF_NOWAIT`, which fails rather than wait for the disk);
/// any other goes to the blocking pool. `sent` counts what was written,
/// also when the copy fails.
async fn send_file<W: AsyncWrite + Unpin + ?Sized>(
    mut file: std::fs::File,
    output: &mut W,
    sent: &mut u64,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; SEND_CHUNK];
    loop {
        let n = match read_cached(&file, &mut buf) {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(e),
            None => {
                let (back_file, back_buf, read) = tokio::task::spawn_blocking(move || {
                    let read = file.read(&mut buf);
                    (file, buf, read)
                })
                .await
                .map_err(std::io::Error::other)?;
                (file, buf) = (back_file, back_buf);
                read?
            }
        };
        if n == 0 {
            break;
        }
        output.write_all(&buf[..n]).await?;
        *sent += n as u64;
    }
    output.flush().await?;
    Ok(*sent)
}

/// Reads from the file's position what the page cache holds, without
/// waiting for the disk: `None` when that would wait (or the file system
/// cannot tell). The end of the file is left to a plain read to say: a
/// `RWF_NOWAIT` read that returns nothing is not taken for it.
fn read_cached(file: &std::fs::File, buf: &mut [u8]) -> Option<std::io::Result<usize>> {
    use rustix::io::{Errno, ReadWriteFlags};
    // An offset of u64::MAX reads from, and moves, the file's position.
    match rustix::io::preadv2(
        file,
        &mut [std::io::IoSliceMut::new(buf)],
        u64::MAX,
        ReadWriteFlags::NOWAIT,
    ) {
        Ok(0) => None,
        Ok(n) => Some(Ok(n)),
        Err(Errno::AGAIN | Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => None,
        Err(e) => Some(Err(e.into())),
    }
}

/// Copies `input` into `file`, a full chunk per trip to the blocking pool,
/// with one buffer; the last write has landed when this returns. When
/// `input` fails, what it gave before is written first.
async fn write_all<R: AsyncRead + Unpin>(
    mut file: std::fs::File,
    mut input: R,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        let mut filled = 0;
        let mut failed = None;
        while filled < CHUNK {
            match input.read(&mut buf[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if filled > 0 {
            let (back_file, back_buf, written) = tokio::task::spawn_blocking(move || {
                let written = file.write_all(&buf[..filled]);
                (file, buf, written)
            })
            .await
            .map_err(std::io::Error::other)?;
            (file, buf) = (back_file, back_buf);
            written?;
            total += filled as u64;
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if filled < CHUNK {
            break;
        }
    }
    Ok(total)
}

/// An upload's data connection, counted. A connection closed without
/// `close_notify` ends the upload as a clean close does (as it did when
/// libunftp read it through the relay); a reset fails it.
struct Counted<'a> {
    inner: &'a mut DataStream,
    count: u64,
}

impl AsyncRead for Counted<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut *self.inner).poll_read(cx, buf) {
            std::task::Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::debug!("upload's data connection closed without close_notify");
                std::task::Poll::Ready(Ok(()))
            }
            std::task::Poll::Ready(Ok(())) => {
                self.count += (buf.filled().len() - before) as u64;
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// After a download's `close_notify`: reads the connection until the client
/// closes it (or [`LINGER`] passes), then lets it go.
async fn linger(mut tls: Box<DataStream>) {
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = tls.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// `REST n` then `STOR`: in place from `n`; cut back to `n` when the disk is full.
async fn resume_upload<R: tokio::io::AsyncRead + Unpin>(
    home: Arc<cap_std::fs::Dir>,
    path: PathBuf,
    input: R,
    start_pos: u64,
) -> Result<u64> {
    let file = blocking(move || {
        let mut options = cap_std::fs::OpenOptions::new();
        options.write(true).create(true);
        home.open_with(path, &options)
    })
    .await?;
    let mut file = file.into_std();
    let cut_back = file.try_clone()?;
    let file = tokio::task::spawn_blocking(move || {
        file.set_len(start_pos)?;
        file.seek(SeekFrom::Start(start_pos))?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| Error::new(ErrorKind::LocalError, e))??;
    let written = write_all(file, input).await;
    if let Err(e) = &written
        && out_of_space(e)
    {
        blocking(move || cut_back.set_len(start_pos)).await?;
    }
    written.map_err(storage_error)
}

/// The disk or the user's quota is full.
fn out_of_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// libunftp's kind of an I/O error: a full quota is `552`, the rest as libunftp maps them
/// (a full disk `452`).
fn storage_error(e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(libc::EDQUOT) {
        return Error::new(ErrorKind::ExceededStorageAllocationError, e);
    }
    Error::from(e)
}

/// A name nobody else picks for a staging file.
fn random_suffix() -> Result<String> {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| Error::from(ErrorKind::LocalError))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl HomeStorage {
    /// The file at `path` in the home, positioned at `start_pos`.
    async fn open_for_reading(&self, path: &Path, start_pos: u64) -> Result<std::fs::File> {
        let home = self.home()?;
        let path = relative(path);
        blocking(move || {
            let mut file = home.open(path)?.into_std();
            if start_pos > 0 {
                file.seek(SeekFrom::Start(start_pos))?;
            }
            Ok(file)
        })
        .await
    }
}
