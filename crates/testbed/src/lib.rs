//! Real servers for the workspace's tests.
//!
//! Each server is Debian's own package, started in a fresh temporary
//! directory on a free loopback port, and stopped (and its files removed)
//! when the value is dropped. Nothing is assumed to be running already:
//! `tests/run.sh` installs the packages, the tests start what they use.
//! MariaDB and InfluxDB are here; nginx and php-fpm in [`web`]; WordPress on
//! both in [`Wordpress`]; a throw-away CA for TLS peers in [`tls`]. Every
//! crate's tests also take their ports here ([`free_port`],
//! [`free_port_range`]) and find other crates' binaries with
//! [`workspace_bin`].
//!
//! ```no_run
//! let db = testbed::Mariadb::start().unwrap();
//! let influx = testbed::Influxdb::start().unwrap();
//! println!("mysql on {}, influx on {}", db.port(), influx.url());
//! ```

use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

mod daemon;
pub mod tls;
pub mod web;
mod wordpress;

use daemon::Daemon;
pub use wordpress::{Wordpress, WordpressDb};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{program} failed: {detail}")]
    Command { program: String, detail: String },
    #[error(
        "{server} did not accept connections on port {port} within {deadline:?}; its log:\n{log}"
    )]
    NotReady {
        server: &'static str,
        port: u16,
        deadline: Duration,
        log: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// A free TCP port on loopback, as the kernel hands it out. Every crate's
/// tests take their ports here (and ranges from [`free_port_range`]), so
/// there is one way to pick them.
pub fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_err("bind port 0"))?;
    let port = listener.local_addr().map_err(io_err("local_addr"))?.port();
    Ok(port)
}

/// The first of `n` consecutive loopback ports that are all free now (an
/// FTP server's passive range). The block is taken below the kernel's
/// ephemeral range (`net.ipv4.ip_local_port_range`), where no outgoing
/// connection of this or an earlier test sits, at a random start, so that
/// tests running at once rarely pick overlapping blocks.
pub fn free_port_range(n: u16) -> Result<u16, Error> {
    const LOWEST: u16 = 10_000;
    let ephemeral = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let starts = ephemeral.saturating_sub(LOWEST).saturating_sub(n);
    if starts == 0 {
        return Err(Error::Io {
            what: format!(
                "find {n} consecutive free ports below the ephemeral range ({ephemeral})"
            ),
            source: io::Error::from(io::ErrorKind::AddrInUse),
        });
    }
    let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
    for attempt in 0..200u64 {
        let first = LOWEST + (random_u64(attempt) % u64::from(starts)) as u16;
        if (first..first + n).all(free) {
            return Ok(first);
        }
    }
    Err(Error::Io {
        what: format!("find {n} consecutive free ports between {LOWEST} and {ephemeral}"),
        source: io::Error::from(io::ErrorKind::AddrInUse),
    })
}

/// A number that differs between calls and processes (std's per-process
/// random hash keys, the time and `salt`); good enough to spread port blocks.
fn random_u64(salt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(salt);
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Another workspace crate's binary, as cargo built it for this test run:
/// `CARGO_BIN_EXE_<name>` exists only for the test's own crate, but
/// `cargo test --workspace` (and `cargo nextest run --workspace`, as
/// `tests/run.sh` does) builds every member's binaries into the directory
/// above this test's executable (`target/<profile>/`). A test therefore
/// never runs cargo itself; run alone (`cargo test -p bootstrap`) it needs
/// `cargo build -p <name>` first, and the error says so.
pub fn workspace_bin(name: &str) -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(io_err("current_exe"))?;
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<name>
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join(name))
        .filter(|bin| bin.is_file())
        .ok_or_else(|| Error::Command {
            program: name.to_owned(),
            detail: format!(
                "not built next to {}: run `cargo test --workspace`, or `cargo build -p {name}` first",
                exe.display()
            ),
        })?;
    Ok(bin)
}

/// A fresh temporary directory, removed when dropped.
fn temp_dir(prefix: &str) -> Result<TempDir, Error> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(io_err("create temp dir"))
}

fn read_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("(no log at {}: {e})", path.display()))
}

fn run(cmd: &mut Command) -> Result<(), Error> {
    let output = cmd
        .output()
        .map_err(io_err(format!("run {:?}", cmd.get_program())))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            program: format!("{:?}", cmd.get_program()),
            detail: format!(
                "{}\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

/// A MariaDB server with a fresh data directory. `root` logs in without a
/// password over the unix socket and over TCP from 127.0.0.1.
#[derive(Debug)]
pub struct Mariadb {
    // Declared before `dir`: the server stops before its files go.
    server: Daemon,
    dir: TempDir,
    port: u16,
}

impl Mariadb {
    pub fn start() -> Result<Self, Error> {
        Self::start_configured("normal")
    }

    /// Like [`Mariadb::start`], with MariaDB's default root authentication
    /// (as Alpine's and Debian's packages install it): `root@localhost` logs
    /// in through the unix socket as the OS user root, with no usable password.
    pub fn start_with_socket_auth() -> Result<Self, Error> {
        Self::start_configured("socket")
    }

    fn start_configured(root_auth: &str) -> Result<Self, Error> {
        let dir = temp_dir("testbed-mariadb-")?;
        let d = dir.path();
        let datadir = d.join("data");
        run(Command::new("mariadb-install-db")
            .arg(format!("--datadir={}", datadir.display()))
            .args([
                "--user=root",
                &format!("--auth-root-authentication-method={root_auth}"),
                "--skip-test-db",
            ]))?;
        let port = free_port()?;
        let server = Daemon::start(
            "mariadbd",
            "mariadbd",
            [
                "--no-defaults".to_string(),
                format!("--datadir={}", datadir.display()),
                format!("--socket={}", d.join("mariadbd.sock").display()),
                format!("--pid-file={}", d.join("mariadbd.pid").display()),
                format!("--port={port}"),
                "--bind-address=127.0.0.1".to_string(),
                "--user=root".to_string(),
                "--skip-name-resolve".to_string(),
            ],
            d.join("mariadbd.log"),
            port,
        )?;
        Ok(Mariadb { server, dir, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadbd.sock")
    }

    /// `mysql://root@127.0.0.1:PORT/`
    pub fn root_url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/", self.port)
    }

    /// Runs SQL as root through the `mariadb` client and returns its tab-separated output.
    pub fn sql(&self, statements: &str) -> Result<String, Error> {
        let output = Command::new("mariadb")
            .arg(format!("--socket={}", self.socket().display()))
            .args([
                "--user=root",
                "--batch",
                "--skip-column-names",
                "-e",
                statements,
            ])
            .output()
            .map_err(io_err("run mariadb client"))?;
        if !output.status.success() {
            return Err(Error::Command {
                program: "mariadb".into(),
                detail: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Stops the server (data kept); `restart` brings it back on the same port.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    pub fn restart(&mut self) -> Result<(), Error> {
        self.server.restart()
    }
}

/// An InfluxDB 1.x server with fresh meta/data/wal directories, HTTP API on
/// a free loopback port, no authentication.
#[derive(Debug)]
pub struct Influxdb {
    // Declared before `_dir`: the server stops before its files go.
    server: Daemon,
    _dir: TempDir,
    http_port: u16,
}

impl Influxdb {
    pub fn start() -> Result<Self, Error> {
        Self::start_configured(false)
    }

    /// Like [`Influxdb::start`], with `auth-enabled = true`: a fresh server
    /// has no user and accepts only the creation of the first admin.
    pub fn start_with_auth() -> Result<Self, Error> {
        Self::start_configured(true)
    }

    fn start_configured(auth: bool) -> Result<Self, Error> {
        let dir = temp_dir("testbed-influxdb-")?;
        let http_port = free_port()?;
        let rpc_port = free_port()?;
        let d = dir.path();
        let config = format!(
            "reporting-disabled = true\n\
             bind-address = \"127.0.0.1:{rpc_port}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{http_port}\"\n  log-enabled = false\n  auth-enabled = {auth}\n\
             [monitor]\n  store-enabled = false\n",
            d = d.display()
        );
        fs::write(d.join("influxdb.conf"), config).map_err(io_err("write influxdb.conf"))?;
        let server = Daemon::start(
            "influxd",
            "influxd",
            [
                "-config".into(),
                d.join("influxdb.conf"),
                "-pidfile".into(),
                d.join("influxd.pid"),
            ],
            d.join("influxd.log"),
            http_port,
        )?;
        Ok(Influxdb {
            server,
            _dir: dir,
            http_port,
        })
    }

    pub fn port(&self) -> u16 {
        self.http_port
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Stops the server (data kept); `restart` brings it back on the same port.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    pub fn restart(&mut self) -> Result<(), Error> {
        self.server.restart()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn port_ranges_are_free_and_consecutive() {
        let first = free_port_range(4).unwrap();
        for p in first..first + 4 {
            assert!(TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok(), "{p}");
        }
    }

    #[test]
    fn a_missing_workspace_bin_says_what_to_build() {
        let e = workspace_bin("no-such-bin").unwrap_err().to_string();
        assert!(e.contains("cargo build -p no-such-bin"), "{e}");
    }
}
