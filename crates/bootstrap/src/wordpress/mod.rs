//! `bootstrap wordpress`: the site, its administrator and its users.
//!
//! 1. Waits for WordPress's database (as the `wordpress` MySQL account).
//! 2. If WordPress is not installed yet (no `siteurl` option), runs
//!    WordPress's own installer, `POST /wp-admin/install.php?step=2`, against
//!    the pod's local web server: it creates the schema, the options and the
//!    administrator `admin` with the Secret's password.
//! 3. Sets the `siteurl` and `home` options to the configured URL
//!    (`https://<LB_IP>:5050`): the installer guesses them from the request.
//! 4. Makes `admin` and every user of the users file match the files: login,
//!    email, role (`wp_capabilities` as PHP serializes it and the legacy
//!    `wp_user_level`) and password. A password is rewritten only when the
//!    stored hash does not verify against the file (then the user's sessions
//!    end), as a phpass portable hash ([`phpass`]), which WordPress 6.1
//!    verifies and 6.8+ accepts. WordPress 6.8+ rehashes such a password to
//!    bcrypt at the next login; the phpass hash bootstrap set is kept in the
//!    user meta [`SEEDED_PASSWORD_META`], so an unchanged Secret is still
//!    recognised then and nothing is rewritten. Users not in the file are
//!    left alone.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use crate::Error;
use crate::deadline::{Attempt, retry};

pub mod content;
pub mod phpass;
pub mod users;

use users::{ADMIN_LOGIN, Role, User};

/// WordPress's database and how to reach it.
#[derive(Debug, Clone)]
pub struct Database {
    pub host: String,
    pub port: u16,
    pub name: String,
    pub user: String,
    pub password: String,
    /// `$table_prefix` of wp-config.php.
    pub table_prefix: String,
}

/// Everything `bootstrap wordpress` needs, secrets already read.
#[derive(Debug, Clone)]
pub struct Seed {
    /// Where bootstrap reaches the pod's own web server (the installer).
    pub local_url: String,
    /// The site's public URL, e.g. `https://192.168.49.20:5050`.
    pub site_url: String,
    pub title: String,
    pub admin_password: String,
    pub admin_email: String,
    pub users: Vec<User>,
    pub db: Database,
    pub timeout: Duration,
}

/// User meta holding the phpass hash bootstrap last set: lets a later run
/// recognise an unchanged Secret after WordPress >= 6.8 rehashed the
/// password to bcrypt (`$wp$2y$...`), which bootstrap cannot verify.
pub const SEEDED_PASSWORD_META: &str = "ft_bootstrap_password";

/// MySQL's "no such table".
const ER_NO_SUCH_TABLE: u16 = 1146;
const ER_ACCESS_DENIED: u16 = 1045;
const ER_DBACCESS_DENIED: u16 = 1044;

async fn connect(db: &Database, timeout: Duration) -> Result<Conn, Error> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(db.host.clone())
        .tcp_port(db.port)
        .user(Some(db.user.clone()))
        .pass(Some(db.password.clone()))
        .db_name(Some(db.name.clone()))
        .prefer_socket(false);
    let what = format!("MySQL at {}:{}", db.host, db.port);
    retry(&what, timeout, || async {
        match Conn::new(opts.clone()).await {
            Ok(c) => Ok(c),
            // The account or database may not exist *yet* (bootstrap mysql
            // runs in another pod), so these are retried too, until the deadline.
            Err(mysql_async::Error::Server(e))
                if e.code == ER_ACCESS_DENIED || e.code == ER_DBACCESS_DENIED =>
            {
                Err(Attempt::Retry(e.to_string()))
            }
            Err(e @ mysql_async::Error::Server(_)) => Err(Attempt::Fail(Error::Mysql(e))),
            Err(e) => Err(Attempt::Retry(e.to_string())),
        }
    })
    .await
}

/// The `siteurl` option, or `None` while WordPress is not installed.
async fn site_url(conn: &mut Conn, prefix: &str) -> Result<Option<String>, Error> {
    let q = format!("SELECT option_value FROM `{prefix}options` WHERE option_name = 'siteurl'");
    match conn.query_first::<String, _>(q).await {
        Ok(v) => Ok(v),
        Err(mysql_async::Error::Server(e)) if e.code == ER_NO_SUCH_TABLE => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn is_loopback_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| h == "localhost" || h == "[::1]" || h.starts_with("127."))
}

/// Runs WordPress's installer through the local web server.
async fn install(seed: &Seed) -> Result<(), Error> {
    let http = reqwest::Client::builder()
        // The pod's own certificate is for the LB address, not 127.0.0.1;
        // the request never leaves the pod.
        .danger_accept_invalid_certs(is_loopback_url(&seed.local_url))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Wordpress(format!("HTTP client: {e}")))?;
    let base = seed.local_url.trim_end_matches('/');
    let page = format!("{base}/wp-admin/install.php");
    retry(&format!("WordPress at {base}"), seed.timeout, || async {
        match http.get(&page).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(Attempt::Retry(format!("{page} answered {}", r.status()))),
            Err(e) => Err(Attempt::Retry(e.to_string())),
        }
    })
    .await?;
    let form = [
        ("weblog_title", seed.title.as_str()),
        ("user_name", ADMIN_LOGIN),
        ("admin_password", seed.admin_password.as_str()),
        ("admin_password2", seed.admin_password.as_str()),
        ("pw_weak", "1"),
        ("admin_email", seed.admin_email.as_str()),
        ("blog_public", "0"),
        ("language", ""),
    ];
    let resp = http
        .post(format!("{page}?step=2"))
        .form(&form)
        .send()
        .await
        .map_err(|e| Error::Wordpress(format!("installer: {e}")))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(Error::Wordpress(format!(
            "installer answered {status}: {}",
            excerpt(&body)
        )));
    }
    tracing::info!("WordPress installed by its installer");
    Ok(())
}

/// The readable part of an HTML error page, for the log.
fn excerpt(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(400).collect()
}

/// `user_nicename` as sanitize_title() makes it from a login.
fn nicename(login: &str) -> String {
    let s: String = login
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.chars().take(50).collect()
}

/// Sets one user meta value (when `force` or when missing).
async fn set_meta(
    conn: &mut Conn,
    prefix: &str,
    user_id: u64,
    key: &str,
    value: &str,
    force: bool,
) -> Result<(), Error> {
    let table = format!("`{prefix}usermeta`");
    let current: Option<(u64, Option<String>)> = conn
        .exec_first(
            format!("SELECT umeta_id, meta_value FROM {table} WHERE user_id = ? AND meta_key = ? ORDER BY umeta_id LIMIT 1"),
            (user_id, key),
        )
        .await?;
    match current {
        None => {
            conn.exec_drop(
                format!("INSERT INTO {table} (user_id, meta_key, meta_value) VALUES (?, ?, ?)"),
                (user_id, key, value),
            )
            .await?;
        }
        Some((id, v)) if force && v.as_deref() != Some(value) => {
            conn.exec_drop(
                format!("UPDATE {table} SET meta_value = ? WHERE umeta_id = ?"),
                (value, id),
            )
            .await?;
            tracing::info!(user_id, key, "fixed");
        }
        Some(_) => {}
    }
    Ok(())
}

/// Makes one account match: exists, email, password, role.
async fn ensure_user(
    conn: &mut Conn,
    prefix: &str,
    login: &str,
    email: Option<&str>,
    password: &str,
    role: Role,
) -> Result<(), Error> {
    let users = format!("`{prefix}users`");
    let row: Option<(u64, String, String)> = conn
        .exec_first(
            format!("SELECT ID, user_pass, user_email FROM {users} WHERE user_login = ?"),
            (login,),
        )
        .await?;
    let hash = || phpass::hash(password).map_err(|e| Error::Wordpress(format!("random salt: {e}")));
    let id = match row {
        None => {
            let h = hash()?;
            conn.exec_drop(
                format!(
                    "INSERT INTO {users} (user_login, user_pass, user_nicename, user_email, user_url, \
                     user_registered, user_activation_key, user_status, display_name) \
                     VALUES (?, ?, ?, ?, '', UTC_TIMESTAMP(), '', 0, ?)"
                ),
                (login, &h, nicename(login), email.unwrap_or(""), login),
            )
            .await?;
            tracing::info!(%login, role = role.slug(), "user created");
            let id = conn
                .last_insert_id()
                .ok_or_else(|| Error::Wordpress(format!("no id for new user {login}")))?;
            set_meta(conn, prefix, id, SEEDED_PASSWORD_META, &h, true).await?;
            id
        }
        Some((id, stored, stored_email)) => {
            let seeded: Option<String> = conn
                .exec_first(
                    format!("SELECT meta_value FROM `{prefix}usermeta` WHERE user_id = ? AND meta_key = ? ORDER BY umeta_id LIMIT 1"),
                    (id, SEEDED_PASSWORD_META),
                )
                .await?;
            if phpass::verify(password, &stored) {
                // Remember it, for when WordPress >= 6.8 rehashes it to bcrypt.
                set_meta(conn, prefix, id, SEEDED_PASSWORD_META, &stored, true).await?;
            } else if !stored.starts_with("$P$")
                && seeded
                    .as_deref()
                    .is_some_and(|h| phpass::verify(password, h))
            {
                // WordPress rehashed the password bootstrap set (e.g. to
                // `$wp$2y$` at a login on 6.8+) and the Secret has not changed.
            } else {
                let h = hash()?;
                conn.exec_drop(
                    format!(
                        "UPDATE {users} SET user_pass = ?, user_activation_key = '' WHERE ID = ?"
                    ),
                    (&h, id),
                )
                .await?;
                set_meta(conn, prefix, id, SEEDED_PASSWORD_META, &h, true).await?;
                // A changed password ends the sessions of the old one.
                conn.exec_drop(
                    format!("DELETE FROM `{prefix}usermeta` WHERE user_id = ? AND meta_key = 'session_tokens'"),
                    (id,),
                )
                .await?;
                tracing::info!(%login, "password set");
            }
            if let Some(email) = email.filter(|e| *e != stored_email) {
                conn.exec_drop(
                    format!("UPDATE {users} SET user_email = ? WHERE ID = ?"),
                    (email, id),
                )
                .await?;
                tracing::info!(%login, "email set");
            }
            id
        }
    };
    let caps = format!("{prefix}capabilities");
    let level = format!("{prefix}user_level");
    set_meta(conn, prefix, id, &caps, &role.capabilities(), true).await?;
    set_meta(
        conn,
        prefix,
        id,
        &level,
        &role.user_level().to_string(),
        true,
    )
    .await?;
    // What wp_insert_user() writes for a new user; never overwritten.
    for (key, value) in [
        ("nickname", login),
        ("first_name", ""),
        ("last_name", ""),
        ("description", ""),
        ("rich_editing", "true"),
        ("syntax_highlighting", "true"),
        ("comment_shortcuts", "false"),
        ("admin_color", "fresh"),
        ("use_ssl", "0"),
        ("show_admin_bar_front", "true"),
        ("locale", ""),
    ] {
        set_meta(conn, prefix, id, key, value, false).await?;
    }
    Ok(())
}

/// Installs WordPress if needed and makes options and users match.
pub async fn seed(seed: &Seed) -> Result<(), Error> {
    let prefix = &seed.db.table_prefix;
    if !prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Error::Wordpress(format!("bad table prefix {prefix:?}")));
    }
    let mut conn = connect(&seed.db, seed.timeout).await?;
    if site_url(&mut conn, prefix).await?.is_none() {
        install(seed).await?;
        if site_url(&mut conn, prefix).await?.is_none() {
            return Err(Error::Wordpress(
                "the installer ran but WordPress is still not installed (no siteurl option)".into(),
            ));
        }
    }
    let options = format!("`{prefix}options`");
    for name in ["siteurl", "home"] {
        conn.exec_drop(
            format!(
                "UPDATE {options} SET option_value = ? WHERE option_name = ? AND option_value <> ?"
            ),
            (&seed.site_url, name, &seed.site_url),
        )
        .await?;
        let changed = conn.affected_rows();
        if changed > 0 {
            tracing::info!(option = name, url = %seed.site_url, "set");
        }
    }
    ensure_user(
        &mut conn,
        prefix,
        ADMIN_LOGIN,
        None,
        &seed.admin_password,
        Role::Administrator,
    )
    .await?;
    for u in &seed.users {
        ensure_user(
            &mut conn,
            prefix,
            &u.login,
            Some(&u.email),
            &u.password,
            u.role,
        )
        .await?;
    }
    conn.disconnect().await?;
    Ok(())
}
