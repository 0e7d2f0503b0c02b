//! A server's child process: started with its output in a log file, ready
//! once it accepts TCP connections on its port, stopped (politely, then
//! firmly) on `stop` or drop, and started again with the same command line
//! on `restart`.

use std::ffi::OsString;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Error, io_err, read_log};

/// How long a server may take to accept connections before the test fails.
const START_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub(crate) struct Daemon {
    name: &'static str,
    program: OsString,
    args: Vec<OsString>,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Daemon {
    /// Runs `program args`, writing its output to `log`, and waits until
    /// `127.0.0.1:port` accepts connections. `name` is for error messages.
    pub(crate) fn start(
        name: &'static str,
        program: impl Into<OsString>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
        log: PathBuf,
        port: u16,
    ) -> Result<Self, Error> {
        let mut daemon = Daemon {
            name,
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            log,
            port,
            child: None,
        };
        daemon.launch()?;
        Ok(daemon)
    }

    fn launch(&mut self) -> Result<(), Error> {
        let out = fs::File::create(&self.log)
            .map_err(io_err(format!("create {}", self.log.display())))?;
        let err = out.try_clone().map_err(io_err("clone log handle"))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io_err(format!("spawn {:?}", self.program)))?;
        // Kept even when not ready, so that drop stops it.
        let child = self.child.insert(child);
        wait_for_port(self.name, self.port, child, &self.log)
    }

    /// The log file the process writes its output to.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// Stops the process; `restart` runs it again.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }

    pub(crate) fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        self.launch()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
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
