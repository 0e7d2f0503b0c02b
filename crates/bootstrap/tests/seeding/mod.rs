//! Running the bootstrap binary, and what the WordPress pod stands on: a
//! real MariaDB seeded by `bootstrap mysql`, and Debian's WordPress (nginx +
//! php-fpm) using it as the `wordpress` account.

#![allow(dead_code, clippy::unwrap_used)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the bootstrap binary; LB_IP from the environment is not passed on.
pub fn bootstrap<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(args)
        .env_remove("LB_IP")
        .output()
        .unwrap()
}

/// The standard output of a command that must have succeeded; its standard
/// error is the failure message otherwise.
pub fn succeeded(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `<account>-pw` as the password of each MySQL account into
/// `dir/ft-mysql` and runs `bootstrap mysql` with it; returns that directory.
pub fn seed_mysql(db: &testbed::Mariadb, dir: &Path) -> PathBuf {
    let secrets = dir.join("ft-mysql");
    std::fs::create_dir(&secrets).unwrap();
    for k in ["wordpress", "phpmyadmin", "collect"] {
        std::fs::write(secrets.join(format!("{k}-password")), format!("{k}-pw\n")).unwrap();
    }
    succeeded(bootstrap([
        OsStr::new("mysql"),
        OsStr::new("--socket"),
        db.socket().as_os_str(),
        OsStr::new("--secrets"),
        secrets.as_os_str(),
    ]));
    secrets
}

/// Debian's WordPress on `db`'s `wordpress` database, as seeded by [`seed_mysql`].
pub fn start_wordpress(db: &testbed::Mariadb) -> testbed::Wordpress {
    testbed::Wordpress::start(&testbed::WordpressDb {
        host: "127.0.0.1".into(),
        port: db.port(),
        name: "wordpress".into(),
        user: "wordpress".into(),
        password: "wordpress-pw".into(),
    })
    .unwrap()
}
