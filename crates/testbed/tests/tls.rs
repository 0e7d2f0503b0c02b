//! The throw-away CA: what it issues verifies against it as a server
//! certificate for exactly the names asked, and its files go with it.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn issued_certificates_verify_for_their_names_and_vanish_with_the_ca() {
    let ca = testbed::tls::TestCa::new("testbed test CA").unwrap();
    let loopback = ca
        .issue(&["localhost"], &[IpAddr::V4(Ipv4Addr::LOCALHOST)])
        .unwrap();
    let named = ca.issue(&["grafana", "grafana.default.svc"], &[]).unwrap();
    assert_ne!(loopback, named);
    let ca_cert = ca.ca_cert().display().to_string();
    for (cert, host, ip, not) in [
        (&loopback, "localhost", Some("127.0.0.1"), "grafana"),
        (&named, "grafana.default.svc", None, "localhost"),
    ] {
        let cert = cert.cert.display().to_string();
        let verify = |extra: &[&str]| {
            Command::new("openssl")
                .args(["verify", "-CAfile", &ca_cert, "-purpose", "sslserver"])
                .args(extra)
                .arg(&cert)
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(verify(&["-verify_hostname", host]), "{cert} for {host}");
        assert!(!verify(&["-verify_hostname", not]), "{cert} for {not}");
        if let Some(ip) = ip {
            assert!(verify(&["-verify_ip", ip]), "{cert} for {ip}");
        }
    }
    // The key is the certificate's own.
    assert_eq!(
        openssl(&[
            "x509",
            "-noout",
            "-pubkey",
            "-in",
            loopback.cert.to_str().unwrap()
        ]),
        openssl(&["pkey", "-pubout", "-in", loopback.key.to_str().unwrap()])
    );
    let dir = ca.dir().to_owned();
    assert!(dir.join("ca.crt").exists());
    drop(ca);
    assert!(!dir.exists());
}
