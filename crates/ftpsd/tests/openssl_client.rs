//! ftpsd's AUTH TLS as OpenSSL's `s_client -starttls ftp` sees it: the tool
//! testssl.sh and many scripts use, which reads the 234 reply with a single
//! read and takes whatever follows it for the TLS handshake.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn every_openssl_starttls_handshake_succeeds() {
    let server = Ftpsd::start();
    let mut failures = Vec::new();
    for version in ["-tls1_2", "-tls1_3"] {
        for attempt in 0..20 {
            let mut child = Command::new("openssl")
                .args(["s_client", "-starttls", "ftp", "-brief", version])
                .arg("-connect")
                .arg(format!("127.0.0.1:{}", server.port))
                .arg("-CAfile")
                .arg(server.ca())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("openssl is installed");
            child.stdin.take().unwrap().write_all(b"QUIT\r\n").unwrap();
            let out = child.wait_with_output().unwrap();
            let log = format!("{}{}", stdout(&out), stderr(&out));
            if !log.contains("Verification: OK") || !log.contains("Ciphersuite:") {
                failures.push(format!("{version} #{attempt}: {log}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 40 handshakes failed:\n{}\nserver log:\n{}",
        failures.len(),
        failures.join("\n"),
        server.log()
    );
}
