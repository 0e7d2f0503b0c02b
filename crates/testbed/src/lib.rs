//! Real servers for the workspace's tests.
//!
//! Each server is Debian's own package, started in a fresh temporary
//! directory on a free loopback port, and stopped (and its files removed)
//! when the value is dropped. Nothing is assumed to be running already:
//! `tests/run.sh` installs the packages, the tests start what they use.
//!
//! ```no_run
//! let db = testbed::Mariadb::start().unwrap();
//! let influx = testbed::Influxdb::start().unwrap();
//! println!("mysql on {}, influx on {}", db.port(), influx.url());
//! ```

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod wordpress;
pub use wordpress::{Wordpress, WordpressDb};

/// How long a server may take to accept connections before the test fails.
const START_DEADLINE: Duration = Duration::from_secs(60);

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

/// A free TCP port on loopback, as the kernel hands it out.
pub fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_err("bind port 0"))?;
    let port = listener.local_addr().map_err(io_err("local_addr"))?.port();
    Ok(port)
}

/// Polls until something accepts TCP connections on `127.0.0.1:port`, or the
/// child exits, or the deadline passes.
fn wait_for_port(
    server: &'static str,
    port: u16,
    child: &mut Child,
    log: &Path,
) -> Result<(), Error> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let started = Instant::now();
    while started.elapsed() < START_DEADLINE {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Command {
                program: server.to_string(),
                detail: format!("exited with {status}; log:\n{}", read_log(log)),
            });
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(Error::NotReady {
        server,
        port,
        deadline: START_DEADLINE,
        log: read_log(log),
    })
}

fn read_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("(no log at {}: {e})", path.display()))
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child, Error> {
    let out = fs::File::create(log).map_err(io_err(format!("create {}", log.display())))?;
    let err = out.try_clone().map_err(io_err("clone log handle"))?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(io_err(format!("spawn {:?}", cmd.get_program())))
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

/// Stops a child politely, then firmly.
fn stop(child: &mut Child) {
    // SIGTERM via kill(1) keeps this crate free of unsafe code and libc.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A MariaDB server with a fresh data directory. `root` logs in without a
/// password over the unix socket and over TCP from 127.0.0.1.
#[derive(Debug)]
pub struct Mariadb {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
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
        let dir = tempfile::Builder::new()
            .prefix("testbed-mariadb-")
            .tempdir()
            .map_err(io_err("create temp dir"))?;
        let datadir = dir.path().join("data");
        run(Command::new("mariadb-install-db")
            .arg(format!("--datadir={}", datadir.display()))
            .args([
                "--user=root",
                &format!("--auth-root-authentication-method={root_auth}"),
                "--skip-test-db",
            ]))?;
        let mut db = Mariadb {
            port: free_port()?,
            dir,
            child: None,
        };
        db.launch()?;
        Ok(db)
    }

    fn launch(&mut self) -> Result<(), Error> {
        let d = self.dir.path();
        let log = d.join("mariadbd.log");
        let mut child = spawn_logged(
            Command::new("mariadbd")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", d.join("data").display()))
                .arg(format!("--socket={}", self.socket().display()))
                .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
                .arg(format!("--port={}", self.port))
                .args([
                    "--bind-address=127.0.0.1",
                    "--user=root",
                    "--skip-name-resolve",
                ]),
            &log,
        )?;
        let ready = wait_for_port("mariadbd", self.port, &mut child, &log);
        self.child = Some(child);
        ready
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
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }

    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        self.launch()
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An InfluxDB 1.x server with fresh meta/data/wal directories, HTTP API on
/// a free loopback port, no authentication.
#[derive(Debug)]
pub struct Influxdb {
    dir: TempDir,
    http_port: u16,
    child: Option<Child>,
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
        let dir = tempfile::Builder::new()
            .prefix("testbed-influxdb-")
            .tempdir()
            .map_err(io_err("create temp dir"))?;
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
        let mut influx = Influxdb {
            dir,
            http_port,
            child: None,
        };
        influx.launch()?;
        Ok(influx)
    }

    fn launch(&mut self) -> Result<(), Error> {
        let d = self.dir.path();
        let log = d.join("influxd.log");
        let mut child = spawn_logged(
            Command::new("influxd")
                .arg("-config")
                .arg(d.join("influxdb.conf"))
                .arg("-pidfile")
                .arg(d.join("influxd.pid")),
            &log,
        )?;
        let ready = wait_for_port("influxd", self.http_port, &mut child, &log);
        self.child = Some(child);
        ready
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
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }

    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        self.launch()
    }
}

impl Drop for Influxdb {
    fn drop(&mut self) {
        self.stop();
    }
}
