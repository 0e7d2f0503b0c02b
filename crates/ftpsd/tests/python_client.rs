//! ftpsd driven by Python's ftplib.FTP_TLS (`tests/ftps_client.py`).
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::time::Duration;

fn assert_ok(out: &std::process::Output, server: &Ftpsd) {
    assert!(
        out.status.success() && stdout(out).lines().last() == Some("OK"),
        "python failed:\n{}\n{}\nserver log:\n{}",
        stdout(out),
        stderr(out),
        server.log()
    );
}

#[test]
fn workflow_resume_session_reuse_and_plaintext_refusal() {
    let server = Ftpsd::start();
    let out = server.python("workflow", &[]);
    assert_ok(&out, &server);
    assert!(stdout(&out).contains("all resumed the control session"));
    let home = server.home(USER);
    assert_eq!(
        std::fs::metadata(home.join("resume.bin")).unwrap().len(),
        3 << 20
    );
    assert!(!home.join("dir1").exists());
    let log = server.log();
    assert!(
        log.contains("login failed") && log.contains("upload") && log.contains("rename"),
        "{log}"
    );
}

#[test]
fn tls12_resumes_and_older_versions_are_refused() {
    let server = Ftpsd::start();
    assert_ok(&server.python("tls12", &[]), &server);
}

#[test]
fn traversal_and_symlinks_stay_inside_home() {
    let server = Ftpsd::start();
    let tree = server.traversal_tree();
    let before = server.snapshot_outside_home();
    let (outside, bob) = (tree.outside, tree.bob);

    let out = server.python("traversal", &[]);
    assert_ok(&out, &server);

    let names = |dir: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&bob), ["secret.txt"]);
    assert_eq!(
        std::fs::read_to_string(bob.join("secret.txt")).unwrap(),
        "bob's secret\n"
    );
    assert_eq!(names(&outside), ["outside.txt"]);
    assert_eq!(
        std::fs::read_to_string(outside.join("outside.txt")).unwrap(),
        "outside\n"
    );
    assert_eq!(names(&server.data()), [".uploads", "alice", "bob"]);
    assert!(names(&server.data().join(".uploads")).is_empty());
    assert_eq!(before, server.snapshot_outside_home());
    assert!(!std::path::Path::new("/etc/evil.txt").exists());
}

#[test]
fn fifty_clients_at_once() {
    let server = Ftpsd::start_with(Options {
        passive_ports: 100,
        ..Options::default()
    });
    let out = server.python("many", &["--clients", "50"]);
    assert_ok(&out, &server);
    let files = std::fs::read_dir(server.home(USER)).unwrap().count();
    assert_eq!(files, 50);
    let metrics = server.metrics();
    assert_metrics(&metrics, &[(r#"ftpsd_logins_total{result="ok"}"#, 50.0)]);
}

#[test]
fn repeated_failures_lock_the_client_out() {
    let server = Ftpsd::start_with(Options {
        max_failures: 3,
        lockout_seconds: 120,
        failure_delay_ms: 50,
        ..Options::default()
    });
    let out = server.python("lockout", &["--failures", "3"]);
    assert_ok(&out, &server);
    let metrics = server.metrics();
    assert_metrics(
        &metrics,
        &[
            (r#"ftpsd_logins_total{result="failed"}"#, 3.0),
            (r#"ftpsd_logins_total{result="locked_out"}"#, 1.0),
            // The account and (per_source, the default) the client's address.
            ("ftpsd_lockouts_total", 2.0),
            (r#"ftpsd_logins_total{result="ok"}"#, 0.0),
        ],
    );
    let log = server.log();
    assert!(log.contains("account locked out") && log.contains("client address locked out"));
}

#[test]
fn idle_sessions_time_out() {
    let server = Ftpsd::start_with(Options {
        idle_timeout_seconds: 2,
        ..Options::default()
    });
    let out = server.python("idle", &["--idle-seconds", "2"]);
    assert_ok(&out, &server);
    // The session slot is given back.
    wait_until("active sessions back to 0", Duration::from_secs(10), || {
        metric(&server.metrics(), "ftpsd_sessions_active") == Some(0.0)
    });
}

#[test]
fn python_200_mib_round_trip_keeps_sha256() {
    let server = Ftpsd::start();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("big.bin");
    let sum = random_file(&src, 200);
    let out = server.python("bigfile", &["--file", src.to_str().unwrap()]);
    assert_ok(&out, &server);
    // The script hashes the download as it arrives.
    assert!(
        stdout(&out).contains(&format!("sha256 {sum} bytes {}", 200 << 20)),
        "{}",
        stdout(&out)
    );
    assert_eq!(sha256(&server.home(USER).join("big.bin")), sum);
}

#[test]
fn failed_logins_are_answered_after_the_delay() {
    let server = Ftpsd::start_with(Options {
        failure_delay_ms: 700,
        ..Options::default()
    });
    let out = server.python("faildelay", &["--delay-ms", "700"]);
    assert_ok(&out, &server);
}

#[test]
fn lockout_expires_after_lockout_seconds() {
    let server = Ftpsd::start_with(Options {
        max_failures: 3,
        lockout_seconds: 2,
        failure_delay_ms: 50,
        ..Options::default()
    });
    let out = server.python(
        "lockout_expiry",
        &["--failures", "3", "--lockout-seconds", "2"],
    );
    assert_ok(&out, &server);
    let metrics = server.metrics();
    assert_metrics(
        &metrics,
        &[
            ("ftpsd_lockouts_total", 2.0),
            (r#"ftpsd_logins_total{result="ok"}"#, 1.0),
        ],
    );
    assert!(
        metric(&metrics, r#"ftpsd_logins_total{result="locked_out"}"#).unwrap() >= 1.0,
        "{metrics}"
    );
}

#[test]
fn feat_lists_exactly_the_extensions_the_server_accepts() {
    let server = Ftpsd::start();
    let out = server.python("features", &[]);
    print!("{}", stdout(&out));
    assert_ok(&out, &server);
}

#[test]
fn a_transfer_of_a_missing_path_gets_a_plain_550() {
    let server = Ftpsd::start();
    std::fs::write(server.data().join("outside.txt"), "outside\n").unwrap();
    let out = server.python("missing_paths", &[]);
    print!("{}", stdout(&out));
    assert_ok(&out, &server);
}
