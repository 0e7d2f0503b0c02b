//! A throw-away certificate authority for tests that speak TLS: a CA and
//! server certificates it signs, made with `openssl` at run time in a
//! temporary directory that goes away with the [`TestCa`].

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use tempfile::TempDir;

use crate::{Error, io_err, run, temp_dir};

/// EC P-256 keys: quick to make, and every client the tests use takes them.
const NEW_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A CA (key and self-signed certificate, valid two days), its files removed
/// when dropped.
#[derive(Debug)]
pub struct TestCa {
    dir: TempDir,
    issued: AtomicU32,
}

/// A server certificate and its key, signed by a [`TestCa`]; the files live
/// in the CA's directory, as long as the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA whose subject is `CN=<name>`.
    pub fn new(name: &str) -> Result<Self, Error> {
        let dir = temp_dir("testbed-ca-")?;
        run(openssl(dir.path())
            .args(["req", "-x509"])
            .args(NEW_KEY)
            .args(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"])
            .arg("-subj")
            .arg(format!("/CN={name}")))?;
        Ok(Self {
            dir,
            issued: AtomicU32::new(0),
        })
    }

    /// The CA's certificate (PEM), for clients to trust.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The directory holding the CA's files and the certificates it issued.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A server certificate (serverAuth, not a CA) for these DNS names and
    /// addresses; its subject is `CN=` the first DNS name (or `server`).
    pub fn issue(&self, dns: &[&str], ips: &[IpAddr]) -> Result<Certificate, Error> {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let d = self.dir.path();
        let (cert, key, csr, ext) = (
            format!("server-{n}.crt"),
            format!("server-{n}.key"),
            format!("server-{n}.csr"),
            format!("server-{n}.cnf"),
        );
        let mut names: Vec<String> = dns.iter().map(|name| format!("DNS:{name}")).collect();
        names.extend(ips.iter().map(|ip| format!("IP:{ip}")));
        let mut extensions = String::new();
        if !names.is_empty() {
            let _ = writeln!(extensions, "subjectAltName={}", names.join(","));
        }
        extensions.push_str("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");
        std::fs::write(d.join(&ext), extensions).map_err(io_err(format!("write {ext}")))?;
        run(openssl(d)
            .arg("req")
            .args(NEW_KEY)
            .args(["-keyout", &key, "-out", &csr])
            .arg("-subj")
            .arg(format!("/CN={}", dns.first().unwrap_or(&"server"))))?;
        run(openssl(d)
            .args([
                "x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key",
            ])
            .args([
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ]))?;
        Ok(Certificate {
            cert: d.join(cert),
            key: d.join(key),
        })
    }
}

fn openssl(dir: &Path) -> Command {
    let mut command = Command::new("openssl");
    command.current_dir(dir);
    command
}
