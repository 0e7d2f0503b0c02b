//! The storage back end: `unftp-sbe-fs` confined to the user's home, with
//! file transfers done in large chunks.
//!
//! `unftp-sbe-fs` reads and writes files through 4 KiB buffers, and every
//! tokio file operation is a hop to the blocking thread pool, so a 1 GiB
//! transfer costs 262 144 of them. Downloads and uploads here open the file
//! the same confined way (`cap-std`, beneath the home directory: no `..`, no
//! absolute path, no symlink out) and move 1 MiB per operation; everything
//! else is delegated to `unftp-sbe-fs`.

use crate::accounts::Account;
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

/// Bytes per file read or write: one trip to the blocking pool each, and
/// one buffer of this size per transfer.
const CHUNK: usize = 256 * 1024;

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
}

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
        })
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
        let file = self.open_for_reading(path.as_ref(), start_pos).await?;
        Ok(send_file(file, output).await?)
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
    /// when the disk is full.
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
        let home = self.home()?;
        let path = relative(path.as_ref());
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

/// Copies `file` to `output`, a chunk per trip to the blocking pool, with
/// one buffer that goes there and back: one copy of the data in memory.
async fn send_file<W: AsyncWrite + Unpin + ?Sized>(
    mut file: std::fs::File,
    output: &mut W,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        let (back_file, back_buf, read) = tokio::task::spawn_blocking(move || {
            let read = file.read(&mut buf);
            (file, buf, read)
        })
        .await
        .map_err(std::io::Error::other)?;
        (file, buf) = (back_file, back_buf);
        let n = read?;
        if n == 0 {
            break;
        }
        output.write_all(&buf[..n]).await?;
        total += n as u64;
    }
    output.flush().await?;
    Ok(total)
}

/// Copies `input` into `file`, a full chunk per trip to the blocking pool,
/// with one buffer; the last write has landed when this returns.
async fn write_all<R: AsyncRead + Unpin>(
    mut file: std::fs::File,
    mut input: R,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        let mut filled = 0;
        while filled < CHUNK {
            match input.read(&mut buf[filled..]).await? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        let (back_file, back_buf, written) = tokio::task::spawn_blocking(move || {
            let written = file.write_all(&buf[..filled]);
            (file, buf, written)
        })
        .await
        .map_err(std::io::Error::other)?;
        (file, buf) = (back_file, back_buf);
        written?;
        total += filled as u64;
        if filled < CHUNK {
            break;
        }
    }
    Ok(total)
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
