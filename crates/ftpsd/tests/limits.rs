//! Metrics endpoint and command line (the session limits are in protections.rs).
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::process::Command;

#[test]
fn metrics_count_logins_bytes_and_commands() {
    let server = Ftpsd::start();
    let file = server.dir.path().join("up.bin");
    std::fs::write(&file, vec![7u8; 100_000]).unwrap();
    let up = server.curl(&[
        "-T",
        file.to_str().unwrap(),
        &format!("{}/up.bin", server.url()),
    ]);
    assert!(up.status.success(), "{}", stderr(&up));
    let down = server.curl(&["-o", "/dev/null", &format!("{}/up.bin", server.url())]);
    assert!(down.status.success(), "{}", stderr(&down));
    let bad = Command::new("curl")
        .args([
            "-sS",
            "--ssl-reqd",
            "--cacert",
            server.ca().to_str().unwrap(),
            "-u",
            "alice:nope",
            &format!("{}/", server.url()),
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    let text = server.metrics();
    assert_metrics(
        &text,
        &[
            (r#"ftpsd_logins_total{result="ok"}"#, 2.0),
            (r#"ftpsd_logins_total{result="failed"}"#, 1.0),
            ("ftp_backend_write_bytes", 100_000.0),
            ("ftp_backend_read_bytes", 100_000.0),
            // File bytes go between the file and the TLS data connection
            // without libunftp: counted by ftpsd.
            (r#"ftpsd_file_bytes_total{direction="sent"}"#, 100_000.0),
            (r#"ftpsd_file_bytes_total{direction="received"}"#, 100_000.0),
        ],
    );
    assert!(
        text.contains(r#"ftp_command_total{command="stor"}"#)
            || text.contains(r#"ftp_command_total{command="STOR"}"#),
        "{text}"
    );
    // ... and libunftp's loopback data connection carried none of them.
    for series in [
        r#"ftp_sent_bytes{command="retr"}"#,
        r#"ftp_received_bytes{command="stor"}"#,
    ] {
        assert_eq!(
            metric(&text, series).unwrap_or(0.0),
            0.0,
            "{series} in\n{text}"
        );
    }
    assert!(text.contains("ftp_sessions_count"), "{text}");
    assert!(text.contains("ftpsd_sessions_active"), "{text}");
}

#[test]
fn check_config_and_hash_password() {
    let server = Ftpsd::start();
    let check_config = |path: &std::path::Path| {
        run(Command::new(env!("CARGO_BIN_EXE_ftpsd"))
            .arg("--check-config")
            .arg("--config")
            .arg(path))
    };
    // What --check-config says about a config it rejects.
    let rejected = |path: &std::path::Path| {
        let out = check_config(path);
        assert!(!out.status.success(), "{} accepted", path.display());
        stderr(&out)
    };
    let ok = check_config(&server.dir.path().join("ftpsd.toml"));
    assert!(ok.status.success(), "{}", stderr(&ok));
    let bad_config = server.dir.path().join("bad.toml");
    std::fs::write(&bad_config, "[passive]\nport_min = 5\nport_max = 4\n").unwrap();
    let text = rejected(&bad_config);
    assert!(text.contains("passive port range"), "{text}");

    // A TOML error and a missing file are each reported once, with the path.
    std::fs::write(&bad_config, "listen = \n").unwrap();
    let text = rejected(&bad_config);
    assert!(
        text.contains(&format!("invalid TOML in {}", bad_config.display())),
        "{text}"
    );
    assert_eq!(text.matches("TOML parse error").count(), 1, "{text}");
    assert_eq!(text.matches("line 1, column").count(), 1, "{text}");
    let missing = server.dir.path().join("missing.toml");
    let text = rejected(&missing);
    assert!(
        text.contains(&format!("cannot read {}", missing.display())),
        "{text}"
    );
    assert_eq!(
        text.matches("No such file or directory").count(),
        1,
        "{text}"
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_ftpsd"))
        .args(["hash-password", "--iterations", "2000"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let hash = stdout(&out).trim().to_owned();
    assert!(hash.starts_with("$pbkdf2-sha256$i=2000$"), "{hash}");
    let parsed = ftpsd::users::PasswordHash::parse(&hash).unwrap();
    assert!(parsed.verify("correct horse"));
    assert!(!parsed.verify("correct horse\n"));
}
