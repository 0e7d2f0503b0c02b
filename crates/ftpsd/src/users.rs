//! The users file and its password hashes.
//!
//! One user a line, `name:hash`, where `hash` is
//! `$pbkdf2-sha256$i=<iterations>$<salt>$<key>` with salt and key in standard
//! base64 without padding (the PHC string format). Blank lines and lines
//! starting with `#` are ignored. Names are 1-64 characters of `A-Z a-z 0-9 . _ -`
//! and do not start with `.`, so a name is always a safe directory name.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;

/// Iterations `ftpsd hash-password` uses unless told otherwise.
pub const DEFAULT_ITERATIONS: u32 = 100_000;
const SALT_LEN: usize = 16;
const KEY_LEN: usize = 32;
const SCHEME: &str = "pbkdf2-sha256";

/// Errors reading the users file or a hash.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read users file {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("users file line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("invalid password hash: {0}")]
    Hash(&'static str),
    #[error("no random numbers available")]
    Random,
}

/// A PBKDF2-HMAC-SHA256 password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    key: Vec<u8>,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, not even in debug logs.
        f.debug_struct("PasswordHash")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt.
    pub fn create(password: &str, iterations: NonZeroU32) -> Result<Self, UsersError> {
        let mut salt = vec![0u8; SALT_LEN];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| UsersError::Random)?;
        let mut key = vec![0u8; KEY_LEN];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            password.as_bytes(),
            &mut key,
        );
        Ok(Self {
            iterations,
            salt,
            key,
        })
    }

    /// Parses the PHC string `$pbkdf2-sha256$i=N$salt$key`.
    pub fn parse(text: &str) -> Result<Self, UsersError> {
        let mut parts = text.split('$');
        let (Some(""), Some(scheme), Some(params), Some(salt), Some(key), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(UsersError::Hash("expected $pbkdf2-sha256$i=N$salt$key"));
        };
        if scheme != SCHEME {
            return Err(UsersError::Hash("only pbkdf2-sha256 is supported"));
        }
        let iterations = params
            .strip_prefix("i=")
            .and_then(|n| n.parse::<NonZeroU32>().ok())
            .ok_or(UsersError::Hash("bad iteration count"))?;
        let salt = STANDARD_NO_PAD
            .decode(salt)
            .map_err(|_| UsersError::Hash("salt is not base64"))?;
        let key = STANDARD_NO_PAD
            .decode(key)
            .map_err(|_| UsersError::Hash("key is not base64"))?;
        if salt.len() < 8 || key.len() < 16 {
            return Err(UsersError::Hash("salt or key too short"));
        }
        Ok(Self {
            iterations,
            salt,
            key,
        })
    }

    /// Constant-time check of `password` against this hash.
    pub fn verify(&self, password: &str) -> bool {
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            self.iterations,
            &self.salt,
            password.as_bytes(),
            &self.key,
        )
        .is_ok()
    }
}

impl std::fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "${SCHEME}$i={}${}${}",
            self.iterations,
            STANDARD_NO_PAD.encode(&self.salt),
            STANDARD_NO_PAD.encode(&self.key)
        )
    }
}

/// All accounts, by name.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<String, PasswordHash>,
}

impl Users {
    /// Reads the users file.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses the users file's text.
    pub fn parse(text: &str) -> Result<Self, UsersError> {
        let mut by_name = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let entry = raw.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let (name, hash) = entry.split_once(':').ok_or_else(|| UsersError::Line {
                line,
                reason: "expected name:hash".into(),
            })?;
            if !valid_name(name) {
                return Err(UsersError::Line {
                    line,
                    reason: format!("invalid user name {name:?}"),
                });
            }
            let hash = PasswordHash::parse(hash).map_err(|e| UsersError::Line {
                line,
                reason: e.to_string(),
            })?;
            if by_name.insert(name.to_owned(), hash).is_some() {
                return Err(UsersError::Line {
                    line,
                    reason: format!("user {name:?} listed twice"),
                });
            }
        }
        Ok(Self { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&PasswordHash> {
        self.by_name.get(name)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Whether `name` may be a user (and so a directory) name.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fast() -> NonZeroU32 {
        NonZeroU32::new(1000).unwrap()
    }

    #[test]
    fn hash_round_trip() {
        let hash = PasswordHash::create("s3cret", fast()).unwrap();
        let text = hash.to_string();
        assert!(text.starts_with("$pbkdf2-sha256$i=1000$"), "{text}");
        let parsed = PasswordHash::parse(&text).unwrap();
        assert_eq!(parsed, hash);
        assert!(parsed.verify("s3cret"));
        assert!(!parsed.verify("s3cret "));
        assert!(!format!("{hash:?}").contains(&text[20..]));
    }

    #[test]
    fn users_file_parses_and_rejects() {
        let hash = PasswordHash::create("pw", fast()).unwrap();
        let users = Users::parse(&format!("# comment\n\nalice:{hash}\nbob-1:{hash}\n")).unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.get("alice").unwrap().verify("pw"));
        assert!(users.get("carol").is_none());
        for bad in [
            format!("../x:{hash}"),
            format!(".hidden:{hash}"),
            "alice:plaintext".to_owned(),
            "alice".to_owned(),
            format!("a:{hash}\na:{hash}"),
            "a:$pbkdf2-sha256$i=0$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ] {
            assert!(Users::parse(&bad).is_err(), "accepted {bad:?}");
        }
    }
}
