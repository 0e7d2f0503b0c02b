//! Secrets arrive as files (Kubernetes Secrets mounted under `/run/secrets`).

use std::path::{Path, PathBuf};

use crate::Error;

/// Reads one secret: the file's content without its trailing newline.
/// A missing, unreadable or empty file is an error naming the file, so a
/// mis-mounted Secret is obvious from the log.
pub fn read(path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::SecretRead {
        path: path.to_path_buf(),
        source,
    })?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.trim().is_empty() {
        return Err(Error::SecretEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(value.to_string())
}

/// Like [`read`], for an optional secret: `None` when no path is configured.
pub fn read_optional(path: Option<&PathBuf>) -> Result<Option<String>, Error> {
    path.map(|p| read(p)).transpose()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn strips_one_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3 cret \n").unwrap();
        assert_eq!(read(&p).unwrap(), "s3 cret ");
    }

    #[test]
    fn empty_and_missing_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty-password");
        std::fs::write(&p, "\n").unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("empty-password") && e.contains("empty"), "{e}");
        let missing = dir.path().join("missing-password");
        let e = read(&missing).unwrap_err().to_string();
        assert!(e.contains("missing-password"), "{e}");
    }
}
