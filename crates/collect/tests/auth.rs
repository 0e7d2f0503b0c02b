//! collect with InfluxDB authentication as the stack has it: a `collect`
//! user with WRITE on an existing `metrics` database and no right to create
//! databases; the password comes from a file.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Collect, rows, try_query, wait_for};

fn admin_query(base: &str, q: &str, auth: bool) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "--max-time", "10", "-XPOST"])
        .arg(format!("{base}/query"))
        .arg("--data-urlencode")
        .arg(format!("q={q}"));
    if auth {
        cmd.args(["-u", "admin:admin-pw"]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{q}: {out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("\"error\""),
        "{q}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn writes_with_basic_auth_when_not_allowed_to_create_the_database() {
    let influx = testbed::Influxdb::start_with_auth().unwrap();
    let base = influx.url();
    admin_query(
        &base,
        "CREATE USER admin WITH PASSWORD 'admin-pw' WITH ALL PRIVILEGES",
        false,
    );
    admin_query(&base, "CREATE DATABASE metrics", true);
    admin_query(
        &base,
        "CREATE USER collect WITH PASSWORD 'c0llect pw\"'",
        true,
    );
    admin_query(&base, "GRANT WRITE ON metrics TO collect", true);

    let secrets = tempfile::tempdir().unwrap();
    let pw = secrets.path().join("collect-password");
    std::fs::write(&pw, "c0llect pw\"\n").unwrap();
    let admin_pw = secrets.path().join("admin-password");
    std::fs::write(&admin_pw, "admin-pw\n").unwrap();
    let config = format!(
        r#"
interval = "1s"
service = "auth-test"
pod = "auth-test-0"
[output]
url = "{base}"
username = "collect"
password_file = "{pw}"
[inputs.influxdb]
url = "{base}/debug/vars"
username = "admin"
password_file = "{admin_pw}"
"#,
        pw = pw.display(),
        admin_pw = admin_pw.display()
    );
    let mut collect = Collect::start(&config);
    let auth = Some(("admin", "admin-pw"));
    for m in ["internal_collect", "influxdb_memstats", "net"] {
        wait_for(&format!("{m} stored"), Duration::from_secs(20), || {
            let s = try_query(
                &base,
                "metrics",
                &format!("SELECT * FROM \"{m}\" WHERE service = 'auth-test' LIMIT 1"),
                auth,
            )
            .unwrap_or_default();
            (!rows(&s).is_empty()).then_some(())
        });
    }
    let status = collect.stop();
    assert!(status.success());
    let log = collect.log();
    assert!(
        log.contains("not allowed to create the database"),
        "the refused CREATE DATABASE is logged and passed over:\n{log}"
    );
    assert!(!log.contains("write to InfluxDB failed"), "{log}");
}
