//! `bootstrap influxdb` against a real auth-enabled InfluxDB (testbed).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

fn write_secrets(dir: &Path, grafana: &str) {
    for (k, v) in [
        ("admin-password", "adm'in"),
        ("collect-password", "collect-pw"),
        ("grafana-password", grafana),
    ] {
        std::fs::write(dir.join(k), format!("{v}\n")).unwrap();
    }
}

fn run(url: &str, secrets: &Path, timeout: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(["--timeout", timeout, "influxdb", "--url", url, "--secrets"])
        .arg(secrets)
        .output()
        .unwrap()
}

/// curl as `user`: a query (`q`) or a line-protocol write; returns the HTTP status and body.
fn curl(url: &str, user: &str, pw: &str, path: &str, data: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-u"])
        .arg(format!("{user}:{pw}"))
        .arg(format!("{url}{path}"))
        .args(["--data-binary", data])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

#[test]
fn seeds_users_with_least_privilege_and_rotates_passwords() {
    let influx = testbed::Influxdb::start_with_auth().unwrap();
    let url = influx.url();
    let secrets = tempfile::tempdir().unwrap();
    write_secrets(secrets.path(), "graf-1");
    for _ in 0..2 {
        let out = run(&url, secrets.path(), "30s");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // collect writes, and may not read.
    let (code, body) = curl(
        &url,
        "collect",
        "collect-pw",
        "/write?db=metrics",
        "cpu,host=a v=1",
    );
    assert_eq!(code, 204, "{body}");
    let (_, body) = curl(
        &url,
        "collect",
        "collect-pw",
        "/query?db=metrics",
        "q=SELECT * FROM cpu",
    );
    assert!(body.contains("not authorized"), "{body}");
    // grafana reads, and may not write.
    let (code, body) = curl(
        &url,
        "grafana",
        "graf-1",
        "/query?db=metrics",
        "q=SELECT v FROM cpu",
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"values\""), "{body}");
    let (code, _) = curl(
        &url,
        "grafana",
        "graf-1",
        "/write?db=metrics",
        "cpu,host=a v=2",
    );
    assert_eq!(code, 403);
    // admin: the retention policy is the default one.
    let (_, body) = curl(
        &url,
        "admin",
        "adm'in",
        "/query",
        "q=SHOW RETENTION POLICIES ON metrics",
    );
    assert!(
        body.contains("[\"thirty_days\",\"720h0m0s\",\"24h0m0s\",1,true]"),
        "{body}"
    );

    // A rotated grafana password applies on the next run.
    write_secrets(secrets.path(), "graf-2");
    let out = run(&url, secrets.path(), "30s");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _) = curl(
        &url,
        "grafana",
        "graf-2",
        "/query?db=metrics",
        "q=SHOW MEASUREMENTS",
    );
    assert_eq!(code, 200);
    let (code, _) = curl(
        &url,
        "grafana",
        "graf-1",
        "/query?db=metrics",
        "q=SHOW MEASUREMENTS",
    );
    assert_eq!(code, 401);
}

#[test]
fn wrong_admin_password_is_a_clear_error() {
    let influx = testbed::Influxdb::start_with_auth().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    write_secrets(secrets.path(), "g");
    assert!(run(&influx.url(), secrets.path(), "30s").status.success());
    std::fs::write(secrets.path().join("admin-password"), "other\n").unwrap();
    let out = run(&influx.url(), secrets.path(), "30s");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SET PASSWORD FOR admin"), "{err}");
}

#[test]
fn unreachable_influxdb_fails_after_the_deadline() {
    let secrets = tempfile::tempdir().unwrap();
    write_secrets(secrets.path(), "g");
    let url = format!("http://127.0.0.1:{}", testbed::free_port().unwrap());
    let out = run(&url, secrets.path(), "2s");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not reachable within") && err.contains(&url),
        "{err}"
    );
}
