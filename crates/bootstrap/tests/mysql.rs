//! `bootstrap mysql` against a real MariaDB (testbed), through the binary.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn write_secrets(dir: &Path, wordpress: &str) {
    for (k, v) in [
        ("root-password", "r00t'pw\\x"),
        ("wordpress-password", wordpress),
        ("phpmyadmin-password", "pma-pw"),
        ("collect-password", "collect-pw"),
    ] {
        std::fs::write(dir.join(k), format!("{v}\n")).unwrap();
    }
}

fn bootstrap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run bootstrap")
}

fn run_ok(db: &testbed::Mariadb, secrets: &Path) {
    let out = bootstrap(&[
        "mysql",
        "--socket",
        db.socket().to_str().unwrap(),
        "--secrets",
        secrets.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "bootstrap mysql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Logs in over TCP as `user` with the `mariadb` client and runs `sql`.
fn as_user(db: &testbed::Mariadb, user: &str, pw: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("mariadb")
        .args(["-h127.0.0.1", "--batch", "--skip-column-names"])
        .arg(format!("-P{}", db.port()))
        .arg(format!("-u{user}"))
        .arg(format!("-p{pw}"))
        .args(["-e", sql])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn seeds_accounts_idempotently_and_applies_rotation() {
    let db = testbed::Mariadb::start().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    write_secrets(secrets.path(), "wp-pw-1");
    run_ok(&db, secrets.path());
    // A hand-made extra privilege is what a second run must take away.
    as_user(
        &db,
        "root",
        "r00t'pw\\x",
        "GRANT SELECT ON mysql.* TO 'collect'@'%'",
    )
    .unwrap();
    run_ok(&db, secrets.path());

    // wordpress: everything on its database, nothing elsewhere.
    as_user(
        &db,
        "wordpress",
        "wp-pw-1",
        "CREATE TABLE wordpress.t (i INT); INSERT INTO wordpress.t VALUES (1); DROP TABLE wordpress.t",
    )
    .unwrap();
    let e = as_user(&db, "wordpress", "wp-pw-1", "CREATE DATABASE other").unwrap_err();
    assert!(e.contains("denied"), "{e}");

    // phpmyadmin: a DBA.
    as_user(
        &db,
        "phpmyadmin",
        "pma-pw",
        "CREATE DATABASE scratch; DROP DATABASE scratch; SELECT COUNT(*) FROM mysql.user",
    )
    .unwrap();

    // collect: status counters and the process list, no data.
    let status = as_user(
        &db,
        "collect",
        "collect-pw",
        "SHOW GLOBAL STATUS LIKE 'Questions'; SHOW FULL PROCESSLIST",
    )
    .unwrap();
    assert!(status.contains("Questions"), "{status}");
    let e = as_user(&db, "collect", "collect-pw", "SELECT * FROM mysql.user").unwrap_err();
    assert!(e.contains("denied"), "extra grant was not revoked: {e}");

    // root: the configured password works over TCP, the empty one no longer.
    as_user(&db, "root", "r00t'pw\\x", "SELECT 1").unwrap();
    assert!(as_user(&db, "root", "", "SELECT 1").is_err());

    // Rotation: the new wordpress password replaces the old one.
    write_secrets(secrets.path(), "wp-pw-2");
    run_ok(&db, secrets.path());
    as_user(&db, "wordpress", "wp-pw-2", "SELECT 1").unwrap();
    assert!(as_user(&db, "wordpress", "wp-pw-1", "SELECT 1").is_err());
    let dbs = as_user(&db, "root", "r00t'pw\\x", "SHOW DATABASES LIKE 'wordpress'").unwrap();
    assert_eq!(dbs.trim(), "wordpress");
}

#[test]
fn unreachable_server_is_retried_until_the_deadline_then_fails() {
    let secrets = tempfile::tempdir().unwrap();
    write_secrets(secrets.path(), "pw");
    let port = testbed::free_port().unwrap().to_string();
    let started = std::time::Instant::now();
    let out = bootstrap(&[
        "--timeout",
        "2s",
        "mysql",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--secrets",
        secrets.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(started.elapsed() >= std::time::Duration::from_millis(1500));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not reachable within") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn missing_or_empty_secret_names_the_file() {
    let secrets = tempfile::tempdir().unwrap();
    write_secrets(secrets.path(), "pw");
    std::fs::remove_file(secrets.path().join("collect-password")).unwrap();
    let dir = secrets.path().to_str().unwrap();
    let out = bootstrap(&["mysql", "--host", "127.0.0.1", "--secrets", dir]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{dir}/collect-password")), "{err}");

    std::fs::write(secrets.path().join("collect-password"), "\n").unwrap();
    let out = bootstrap(&["mysql", "--host", "127.0.0.1", "--secrets", dir]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("collect-password") && err.contains("empty"),
        "{err}"
    );
}

#[test]
fn root_with_unix_socket_auth_keeps_access_across_root_password_rotation() {
    let db = testbed::Mariadb::start_with_socket_auth().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    write_secrets(secrets.path(), "wp");
    // root@localhost's password hash, and whether the socket still works.
    let root_auth = |pw: &str| {
        db.sql(&format!(
            "SELECT JSON_VALUE(Priv, '$.authentication_string') = PASSWORD('{pw}'), \
                    JSON_VALUE(Priv, '$.auth_or[1].plugin') \
             FROM mysql.global_priv WHERE User = 'root' AND Host = 'localhost'"
        ))
        .unwrap()
        .trim()
        .to_string()
    };
    run_ok(&db, secrets.path());
    assert_eq!(root_auth("r00t''pw\\\\x"), "1\tunix_socket");
    // A rotated root password: bootstrap knows only the new one, and the
    // unix socket still lets it in to apply it.
    std::fs::write(secrets.path().join("root-password"), "rotated\n").unwrap();
    run_ok(&db, secrets.path());
    assert_eq!(root_auth("rotated"), "1\tunix_socket");
    as_user(&db, "wordpress", "wp", "SELECT 1").unwrap();
}
