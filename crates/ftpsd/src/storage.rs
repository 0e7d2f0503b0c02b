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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufReader, BufWriter};
use unftp_core::storage::{Error, ErrorKind, Fileinfo, Result, StorageBackend};
use unftp_sbe_fs::{Filesystem, Meta};

/// Bytes per file read or write.
const CHUNK: usize = 1024 * 1024;

/// One session's storage.
#[derive(Debug)]
pub struct HomeStorage {
    inner: Filesystem,
    root: PathBuf,
    home: Option<Arc<cap_std::fs::Dir>>,
}

impl HomeStorage {
    pub fn new(root: PathBuf) -> std::io::Result<Self> {
        Ok(Self {
            inner: Filesystem::new(root.clone())?,
            root,
            home: None,
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
        self.home = Some(Arc::new(root.open_dir(relative_home)?));
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
        user: &Account,
        path: P,
        start_pos: u64,
        output: &'a mut W,
    ) -> Result<u64>
    where
        W: tokio::io::AsyncWrite + Unpin + Sync + Send,
        P: AsRef<Path> + Send + Debug,
    {
        let mut reader = self.reader(user, path.as_ref(), start_pos).await?;
        let copied = tokio::io::copy_buf(&mut reader, output).await?;
        Ok(copied)
    }

    async fn get<P: AsRef<Path> + Send + Debug>(
        &self,
        user: &Account,
        path: P,
        start_pos: u64,
    ) -> Result<Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin>> {
        Ok(Box::new(self.reader(user, path.as_ref(), start_pos).await?))
    }

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
        let file = blocking(move || {
            let mut options = cap_std::fs::OpenOptions::new();
            options.write(true).create(true);
            home.open_with(path, &options)
        })
        .await?;
        let mut file = tokio::fs::File::from_std(file.into_std());
        file.set_max_buf_size(CHUNK);
        // A new upload replaces the file; a resumed one (REST) keeps what is before start_pos.
        file.set_len(start_pos).await?;
        file.seek(SeekFrom::Start(start_pos)).await?;
        let mut reader = BufReader::with_capacity(CHUNK, input);
        let mut writer = BufWriter::with_capacity(CHUNK, file);
        let copied = tokio::io::copy_buf(&mut reader, &mut writer).await?;
        writer.flush().await?;
        // Flushing the tokio file waits for its last write to land.
        writer.into_inner().flush().await?;
        Ok(copied)
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
    async fn reader(
        &self,
        _user: &Account,
        path: &Path,
        start_pos: u64,
    ) -> Result<BufReader<tokio::fs::File>> {
        let home = self.home()?;
        let path = relative(path);
        let file = blocking(move || home.open(path)).await?;
        let mut file = tokio::fs::File::from_std(file.into_std());
        file.set_max_buf_size(CHUNK);
        if start_pos > 0 {
            file.seek(SeekFrom::Start(start_pos)).await?;
        }
        Ok(BufReader::with_capacity(CHUNK, file))
    }
}
