//! Secrets arrive as files (Kubernetes Secrets mounted under `/run/secrets`,
//! or `supervise`'s private copies of them).
//!
//! The rule: the value is the file's content without exactly one trailing
//! `"\n"` or `"\r\n"` (what `echo` or an editor adds; any other whitespace is
//! part of the secret), and an empty value is an error: a mis-mounted Secret
//! must be obvious from the log, not a login failure later.

use std::path::{Path, PathBuf};

/// Why a secret could not be read; both name the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read secret {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret {} is empty", path.display())]
    Empty { path: PathBuf },
}

/// Reads the secret in `path` (see the module docs for the rule).
pub fn read(path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let value = strip_line_end(&text);
    if value.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(value.to_string())
}

/// `text` without exactly one trailing `"\n"` or `"\r\n"`; for secrets that
/// arrive another way (a password on stdin) under the same rule.
pub fn strip_line_end(text: &str) -> &str {
    match text.strip_suffix('\n') {
        Some(line) => line.strip_suffix('\r').unwrap_or(line),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn strips_exactly_one_line_end() {
        assert_eq!(strip_line_end("pw\n"), "pw");
        assert_eq!(strip_line_end("pw\r\n"), "pw");
        assert_eq!(strip_line_end("pw\n\n"), "pw\n");
        assert_eq!(strip_line_end("pw \n"), "pw ");
        assert_eq!(strip_line_end("pw"), "pw");
        assert_eq!(strip_line_end("pw\r"), "pw\r");
    }

    #[test]
    fn reads_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3 cret \n").unwrap();
        assert_eq!(read(&p).unwrap(), "s3 cret ");
    }

    #[test]
    fn empty_and_missing_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty-password");
        for content in ["", "\n", "\r\n"] {
            std::fs::write(&p, content).unwrap();
            let e = read(&p).unwrap_err().to_string();
            assert!(e.contains("empty-password") && e.contains("empty"), "{e}");
        }
        let missing = dir.path().join("missing-password");
        let e = read(&missing).unwrap_err().to_string();
        assert!(e.contains("missing-password"), "{e}");
    }
}
