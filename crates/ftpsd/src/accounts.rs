//! Logged-in users and their home directories under the data root.

use async_trait::async_trait;
use std::path::{Path, PathBuf};
use unftp_core::auth::{Principal, UserDetail, UserDetailError, UserDetailProvider};

/// A logged-in user; the storage back end is confined to `home`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub home: PathBuf,
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl UserDetail for Account {
    fn home(&self) -> Option<&Path> {
        Some(&self.home)
    }
}

/// Maps an authenticated name to its [`Account`], creating the home directory
/// `<data_root>/<name>` (mode 0700) on first login.
#[derive(Debug)]
pub struct AccountProvider {
    data_root: PathBuf,
}

impl AccountProvider {
    pub fn new(data_root: PathBuf) -> Self {
        Self { data_root }
    }
}

#[async_trait]
impl UserDetailProvider for AccountProvider {
    type User = Account;

    async fn provide_user_detail(&self, principal: &Principal) -> Result<Account, UserDetailError> {
        // Names come from the users file, whose parser only admits safe directory names;
        // check again so that this function is safe on its own.
        if !crate::users::valid_name(&principal.username) {
            return Err(UserDetailError::UserNotFound {
                username: principal.username.clone(),
            });
        }
        let home = self.data_root.join(&principal.username);
        match std::fs::symlink_metadata(&home) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                // A symlink or file in place of a home would lead the back end elsewhere.
                tracing::error!(user = %principal.username, home = %home.display(), "home is not a directory; login refused");
                return Err(UserDetailError::new("home is not a directory"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::os::unix::fs::DirBuilderExt;
                match std::fs::DirBuilder::new().mode(0o700).create(&home) {
                    Ok(()) => {
                        tracing::info!(user = %principal.username, home = %home.display(), "home created")
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(UserDetailError::with_source("cannot create home", e)),
                }
            }
            Err(e) => return Err(UserDetailError::with_source("cannot inspect home", e)),
        }
        Ok(Account {
            name: principal.username.clone(),
            home,
        })
    }
}
