//! `bootstrap mysql`: the `wordpress` database and the stack's MySQL accounts.
//!
//! Runs as MariaDB's `root` over the unix socket (or TCP). Every run makes the
//! server match the contract (docs/contract.md):
//!
//! | account | privileges |
//! |---|---|
//! | `wordpress@%` | ALL on `wordpress.*` |
//! | `phpmyadmin@%` | ALL on `*.*` WITH GRANT OPTION (phpMyAdmin's DBA login) |
//! | `collect@%` | PROCESS, REPLICATION CLIENT (status counters only) |
//!
//! Passwords are (re)set on every run, so a rotated Secret takes effect at the
//! next container start. Extra privileges of `wordpress` and `collect` are
//! revoked. Anonymous accounts are dropped: they would shadow `user@%` for
//! connections from localhost.
//!
//! Root: bootstrap logs in as root first without a password (fresh data
//! directory, or unix_socket authentication), then with `root-password`.
//! When a root password is configured, every existing root account gets it,
//! and `root@localhost` accepts either that password or the unix_socket plugin, so the OS root of the pod
//! keeps access through the socket even after the Secret changes; root gets
//! no remote (`%`) account.

use std::path::PathBuf;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use crate::Error;
use crate::deadline::{Attempt, retry};

/// Where MariaDB listens.
#[derive(Debug, Clone)]
pub enum Server {
    Socket(PathBuf),
    Tcp { host: String, port: u16 },
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Server::Socket(p) => write!(f, "MySQL at {}", p.display()),
            Server::Tcp { host, port } => write!(f, "MySQL at {host}:{port}"),
        }
    }
}

/// Everything `bootstrap mysql` needs, secrets already read.
#[derive(Debug, Clone)]
pub struct Seed {
    pub server: Server,
    /// Root's password; `None` leaves root's authentication alone.
    pub root_password: Option<String>,
    pub wordpress_password: String,
    pub phpmyadmin_password: String,
    pub collect_password: String,
    /// How long to wait for the server to accept connections.
    pub timeout: Duration,
}

/// The database WordPress uses.
pub const DATABASE: &str = "wordpress";

/// MySQL's "access denied" server error: retrying will not help.
const ER_ACCESS_DENIED: u16 = 1045;
/// "Operation ALTER USER failed": the account is not loaded.
const ER_CANNOT_USER: u16 = 1396;

fn opts(server: &Server, password: Option<&str>) -> OptsBuilder {
    let base = OptsBuilder::default()
        .user(Some("root"))
        .pass(password.map(str::to_string))
        .prefer_socket(false);
    match server {
        Server::Socket(p) => base.socket(Some(p.to_string_lossy().into_owned())),
        Server::Tcp { host, port } => base.ip_or_hostname(host.clone()).tcp_port(*port),
    }
}

fn access_denied(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == ER_ACCESS_DENIED)
}

/// Connects as root, waiting for the server until the deadline.
pub async fn connect_root(
    server: &Server,
    root_password: Option<&str>,
    timeout: Duration,
) -> Result<Conn, Error> {
    retry(&server.to_string(), timeout, || async {
        let first = Conn::new(opts(server, None)).await;
        let err = match first {
            Ok(c) => return Ok(c),
            Err(e) => e,
        };
        if !access_denied(&err) {
            return Err(Attempt::Retry(err.to_string()));
        }
        let Some(pw) = root_password else {
            return Err(Attempt::Fail(Error::Mysql(err)));
        };
        match Conn::new(opts(server, Some(pw))).await {
            Ok(c) => Ok(c),
            Err(e) if access_denied(&e) => Err(Attempt::Fail(Error::Mysql(e))),
            Err(e) => Err(Attempt::Retry(e.to_string())),
        }
    })
    .await
}

/// A SQL string literal. The session runs without NO_BACKSLASH_ESCAPES
/// (see [`seed`]), so backslash and quote are escaped MySQL's way.
/// Account statements take no placeholders, hence literals.
pub fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x1a' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Brings databases and accounts in line with the contract.
pub async fn seed(cfg: &Seed) -> Result<(), Error> {
    let mut conn = connect_root(&cfg.server, cfg.root_password.as_deref(), cfg.timeout).await?;
    conn.query_drop("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
        .await?;

    let anonymous: Vec<String> = conn
        .query("SELECT Host FROM mysql.user WHERE User = ''")
        .await?;
    for host in anonymous {
        tracing::info!(%host, "dropping anonymous account");
        conn.query_drop(format!("DROP USER ''@{}", literal(&host)))
            .await?;
    }

    conn.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    ))
    .await?;

    let accounts: [(&str, &str, &[&str]); 3] = [
        (
            "wordpress",
            &cfg.wordpress_password,
            &["GRANT ALL PRIVILEGES ON `wordpress`.* TO 'wordpress'@'%'"],
        ),
        (
            "phpmyadmin",
            &cfg.phpmyadmin_password,
            &["GRANT ALL PRIVILEGES ON *.* TO 'phpmyadmin'@'%' WITH GRANT OPTION"],
        ),
        (
            "collect",
            &cfg.collect_password,
            &["GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'collect'@'%'"],
        ),
    ];
    for (user, password, grants) in accounts {
        let account = format!("{}@'%'", literal(user));
        let pw = literal(password);
        conn.query_drop(format!(
            "CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {pw}"
        ))
        .await?;
        // Applies a rotated password; a no-op in effect when unchanged.
        conn.query_drop(format!("ALTER USER {account} IDENTIFIED BY {pw}"))
            .await?;
        if user != "phpmyadmin" {
            // Least privilege: whatever was granted by hand goes.
            conn.query_drop(format!(
                "REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account}"
            ))
            .await?;
        }
        for grant in grants {
            conn.query_drop(*grant).await?;
        }
        tracing::info!(%user, "account in place");
    }

    if let Some(root_pw) = &cfg.root_password {
        // Every root account the install created (localhost, 127.0.0.1, ::1,
        // the host name) gets the password: an empty one on any is a hole.
        let hosts: Vec<String> = conn
            .query("SELECT Host FROM mysql.user WHERE User = 'root'")
            .await?;
        for host in hosts {
            let auth = if host == "localhost" {
                format!(
                    "VIA mysql_native_password USING PASSWORD({}) OR unix_socket",
                    literal(root_pw)
                )
            } else {
                format!("BY {}", literal(root_pw))
            };
            let altered = conn
                .query_drop(format!(
                    "ALTER USER 'root'@{} IDENTIFIED {auth}",
                    literal(&host)
                ))
                .await;
            match altered {
                // With skip-name-resolve, accounts on host names are not
                // loaded at all (ER_CANNOT_USER): unusable, nothing to secure.
                Err(mysql_async::Error::Server(e))
                    if e.code == ER_CANNOT_USER && host != "localhost" =>
                {
                    tracing::warn!(%host, "root account not loaded by the server; left alone");
                }
                other => other?,
            }
        }
        tracing::info!("root: password set (and unix socket on localhost)");
    }
    conn.query_drop("FLUSH PRIVILEGES").await?;
    conn.disconnect().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::literal;

    #[test]
    fn literal_escapes_quotes_and_backslashes() {
        assert_eq!(literal(r"a'b\c"), r"'a\'b\\c'");
    }
}
