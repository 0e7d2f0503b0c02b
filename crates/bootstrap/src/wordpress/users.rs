//! The WordPress users file (`ft-wordpress/users`, docs/contract.md):
//! one user a line, `login:role:email:password`; `#` starts a comment line;
//! blank lines are skipped. The password is the rest of the line, so it may
//! contain `:`.

use std::path::Path;

use crate::Error;

/// A WordPress role and what WordPress stores for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Administrator,
    Editor,
    Author,
    Contributor,
    Subscriber,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "administrator" => Role::Administrator,
            "editor" => Role::Editor,
            "author" => Role::Author,
            "contributor" => Role::Contributor,
            "subscriber" => Role::Subscriber,
            _ => return None,
        })
    }

    /// The role's slug, the key in `wp_capabilities`.
    pub fn slug(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Editor => "editor",
            Role::Author => "author",
            Role::Contributor => "contributor",
            Role::Subscriber => "subscriber",
        }
    }

    /// The legacy `wp_user_level` WordPress still writes for each role.
    pub fn user_level(self) -> u8 {
        match self {
            Role::Administrator => 10,
            Role::Editor => 7,
            Role::Author => 2,
            Role::Contributor => 1,
            Role::Subscriber => 0,
        }
    }

    /// `wp_capabilities` as PHP's serialize() writes it: `a:1:{s:6:"editor";b:1;}`.
    pub fn capabilities(self) -> String {
        let slug = self.slug();
        format!("a:1:{{s:{}:\"{slug}\";b:1;}}", slug.len())
    }
}

/// One line of the users file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub login: String,
    pub role: Role,
    pub email: String,
    pub password: String,
}

/// The login bootstrap gives the installer's administrator.
pub const ADMIN_LOGIN: &str = "admin";

/// Logins as WordPress's sanitize_user(strict) keeps them.
fn valid_login(login: &str) -> bool {
    !login.is_empty()
        && login.len() <= 60
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _.-@".contains(c))
        && login.trim() == login
}

fn valid_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !email.chars().any(|c| c.is_whitespace() || c == ':')
                && email.len() <= 100
        }
        None => false,
    }
}

/// Parses the users file's text; `path` only names the file in errors.
pub fn parse(path: &Path, text: &str) -> Result<Vec<User>, Error> {
    let mut users: Vec<User> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let bad = |reason: String| Error::UsersLine {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut parts = raw.trim_end_matches('\r').splitn(4, ':');
        let (Some(login), Some(role), Some(email), Some(password)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected login:role:email:password".into()));
        };
        if !valid_login(login) {
            return Err(bad(format!(
                "login {login:?} is not a WordPress login (letters, digits, space, _ . - @)"
            )));
        }
        if login == ADMIN_LOGIN {
            // One source for the administrator: ft-wordpress/admin-password.
            return Err(bad(format!(
                "login {ADMIN_LOGIN:?} is the site's administrator, whose password is \
                 ft-wordpress/admin-password: remove this line"
            )));
        }
        let role = Role::parse(role).ok_or_else(|| {
            bad(format!(
                "role {role:?} is not one of administrator, editor, author, contributor, subscriber"
            ))
        })?;
        if !valid_email(email) {
            return Err(bad(format!("email {email:?} is not an address")));
        }
        if password.is_empty() {
            return Err(bad("empty password".into()));
        }
        if users.iter().any(|u| u.login == login) {
            return Err(bad(format!("login {login:?} appears twice")));
        }
        if users.iter().any(|u| u.email == email) {
            return Err(bad(format!("email {email:?} appears twice")));
        }
        users.push(User {
            login: login.to_string(),
            role,
            email: email.to_string(),
            password: password.to_string(),
        });
    }
    Ok(users)
}

/// Reads and parses the users file.
pub fn load(path: &Path) -> Result<Vec<User>, Error> {
    let text = daemon::secret::read(path)?;
    parse(path, &text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_comments_blank_lines_and_colons_in_passwords() {
        let users = parse(
            Path::new("users"),
            "# editors\n\nanna:editor:anna@example.com:pa:ss\nbob:subscriber:bob@example.com:x\n",
        )
        .unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].password, "pa:ss");
        assert_eq!(users[1].role, Role::Subscriber);
        assert_eq!(Role::Editor.capabilities(), "a:1:{s:6:\"editor\";b:1;}");
    }

    #[test]
    fn a_line_for_the_administrator_is_refused() {
        let e = parse(
            Path::new("/run/secrets/users"),
            "editor:editor:e@example.com:pw2\nadmin:administrator:admin@example.com:pw\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/run/secrets/users")
                && e.contains("line 2")
                && e.contains("admin-password"),
            "{e}"
        );
    }

    #[test]
    fn malformed_lines_are_named() {
        for (text, needle) in [
            ("ok:editor:ok@example.com:pw\nbroken line\n", "line 2"),
            ("a:boss:a@example.com:pw\n", "role \"boss\""),
            ("a:editor:nomail:pw\n", "email"),
            ("a b!:editor:a@example.com:pw\n", "login"),
            ("a:editor:a@example.com:\n", "empty password"),
            ("admin:editor:a@example.com:pw\n", "administrator"),
        ] {
            let e = parse(Path::new("/run/secrets/users"), text)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("/run/secrets/users") && e.contains(needle),
                "{e}"
            );
        }
    }
}
