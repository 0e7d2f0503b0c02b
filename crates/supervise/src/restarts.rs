//! The restarts file: how many times supervise has started its programs in
//! this pod before, kept where it outlives the container but not the pod
//! (in Kubernetes an `emptyDir` volume).
//!
//! supervise never restarts a program itself; Kubernetes restarts the whole
//! container when supervise exits. So each start of supervise that gets as
//! far as starting programs is one (re)start of every program, and the
//! count of earlier ones is every program's restarts-to-date.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use tracing::{info, warn};

/// Overrides `[health] restarts_file`: the pod knows where its volume is.
pub const ENV: &str = "SUPERVISE_RESTARTS_FILE";

/// A count never takes more than this many bytes; more is not a count.
const MAX_LEN: u64 = 32;

/// Why the restarts file could not be read as a count.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: cannot read restarts file: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: restarts file holds {text:?}, not a count")]
    Garbled { path: PathBuf, text: String },
}

/// The file to use: `$SUPERVISE_RESTARTS_FILE` when set and not empty,
/// else `configured`; `None` when neither (restarts are then always 0).
pub fn path(configured: Option<&Path>) -> Option<PathBuf> {
    std::env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| configured.map(Path::to_owned))
}

/// The count in `path`; 0 when the file does not exist (the pod's first start).
pub fn read(path: &Path) -> Result<u32, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    match std::fs::File::open(path) {
        Ok(f) => f.take(MAX_LEN + 1).read_to_end(&mut bytes).map_err(io)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(e)),
    };
    let text = String::from_utf8_lossy(&bytes);
    text.trim()
        .parse()
        .ok()
        .filter(|_| bytes.len() as u64 <= MAX_LEN)
        .ok_or_else(|| ReadError::Garbled {
            path: path.to_owned(),
            text: text.chars().take(MAX_LEN as usize).collect(),
        })
}

/// Replaces the count in `path` by `count`, atomically: a temp file in the
/// same directory, then rename, so a crash mid-write never leaves half a
/// number. The directory is not created: a missing one means the volume is
/// not mounted, and a file in the container's own filesystem would vanish
/// with the container and count nothing.
pub fn write(path: &Path, count: u32) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&temp)?;
        writeln!(f, "{count}")?;
        f.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Reads the count of earlier starts from `path` and records this one.
/// Returns the earlier starts: the restarts to report.
///
/// A file that cannot be read or holds no count is a warning, not a reason
/// to stop: the volume outlives the container, so exiting would fail every
/// restart of the pod in the same way until the pod is deleted, taking the
/// service down over a diagnostic figure. The count starts again from 0 and
/// the file is rewritten. A failed write is a warning too: this start will
/// not be counted by the next one.
pub fn record(path: &Path) -> u32 {
    let earlier = read(path).unwrap_or_else(|e| {
        warn!("{e}; counting restarts from 0 again");
        0
    });
    match write(path, earlier.saturating_add(1)) {
        Ok(()) => info!("{}: {earlier} earlier start(s) in this pod", path.display()),
        Err(e) => warn!(
            "{}: cannot record this start in the restarts file: {e}; the next start will not count it",
            path.display()
        ),
    }
    earlier
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counts_round_trip_and_a_missing_file_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("restarts");
        assert_eq!(read(&file).unwrap(), 0);
        write(&file, 41).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "41\n");
        assert_eq!(read(&file).unwrap(), 41);
        // Only the file itself is left, no temp file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn garbage_and_overlong_contents_are_not_counts() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("restarts");
        for bad in ["", "banana", "-1", "4294967296", &"0".repeat(40)] {
            std::fs::write(&file, bad).unwrap();
            let e = read(&file).unwrap_err();
            assert!(matches!(e, ReadError::Garbled { .. }), "{bad:?}: {e}");
        }
        std::fs::write(&file, " 7 \n").unwrap();
        assert_eq!(read(&file).unwrap(), 7);
    }

    #[test]
    fn a_write_into_a_missing_directory_fails_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("absent").join("restarts");
        assert!(write(&file, 1).is_err());
        assert!(!dir.path().join("absent").exists());
    }
}
