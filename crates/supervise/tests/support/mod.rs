//! Runs the real `supervise` binary on a config in a temporary directory
//! and watches it from outside: its output, its health endpoint, /proc.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const BIN: &str = env!("CARGO_BIN_EXE_supervise");

/// Polls `cond` every 20 ms until it holds or `secs` pass.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running supervise.
pub struct Sv {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
    /// The threads reading stdout and stderr; each ends at its pipe's EOF.
    readers: Vec<JoinHandle<()>>,
}

fn collect(mut r: impl Read + Send + 'static) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let t = text.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            t.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (text, reader)
}

/// Writes `body` (with `{dir}` replaced by the temp dir) as the config,
/// with a `[health]` section on a free port, and starts supervise on it.
pub fn start(body: &str) -> Sv {
    let dir = tempfile::tempdir().unwrap();
    start_in(dir, body, &[])
}

pub fn start_in(dir: tempfile::TempDir, body: &str, env: &[(&str, &str)]) -> Sv {
    start_wrapped(&[], dir, body, env)
}

/// As [`start_in`], with supervise run by `wrapper` (e.g. `unshare ...`).
pub fn start_wrapped(
    wrapper: &[&str],
    dir: tempfile::TempDir,
    body: &str,
    env: &[(&str, &str)],
) -> Sv {
    let port = testbed::free_port().unwrap();
    let config = dir.path().join("supervise.toml");
    let body = body.replace("{dir}", dir.path().to_str().unwrap());
    std::fs::write(
        &config,
        format!("[health]\nlisten = \"127.0.0.1:{port}\"\n\n{body}"),
    )
    .unwrap();
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    let mut child = command
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, out_reader) = collect(child.stdout.take().unwrap());
    let (stderr, err_reader) = collect(child.stderr.take().unwrap());
    Sv {
        child,
        dir,
        port,
        stdout,
        stderr,
        status: None,
        readers: vec![out_reader, err_reader],
    }
}

impl Sv {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap();
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits for supervise to exit and for its last output lines (the end of
    /// its stdout and stderr); its exit code.
    pub fn wait(&mut self, secs: u64) -> i32 {
        if self.status.is_none() {
            let deadline = Instant::now() + Duration::from_secs(secs);
            loop {
                if let Some(s) = self.child.try_wait().unwrap() {
                    self.status = Some(s);
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "supervise still running after {secs} s; stderr:\n{}",
                    self.stderr()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Its pipes close when it (and a wrapper) are gone, unless something
        // it started outlived it holding them: that is a failure too.
        wait_for(10, "the end of supervise's stdout and stderr", || {
            self.readers.iter().all(JoinHandle::is_finished)
        });
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        self.status.unwrap().code().unwrap_or(-1)
    }

    pub fn running(&mut self) -> bool {
        self.status.is_none() && self.child.try_wait().unwrap().is_none()
    }

    /// `GET path` on the health endpoint: status code and JSON body.
    pub fn get(&self, path: &str) -> Option<(u16, serde_json::Value)> {
        http_get(self.port, path)
    }

    /// Waits until the health endpoint answers.
    pub fn wait_health(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.get("/healthz").is_none() {
            assert!(
                Instant::now() < deadline,
                "no health endpoint; supervise's log:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `stderr` contains `text`.
    pub fn wait_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.stderr().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in supervise's log:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sv {
    fn drop(&mut self) {
        if self.running() {
            let _ = kill(self.pid(), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn http_get(port: u16, path: &str) -> Option<(u16, serde_json::Value)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    Some((code, serde_json::from_str(body).ok()?))
}

/// The state letter from /proc/PID/stat, or None when the pid is gone.
pub fn proc_state(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Pids of zombies whose parent is `parent`.
pub fn zombies_of(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| proc_state(pid).is_some_and(|(s, pp)| s == 'Z' && pp == parent))
        .collect()
}

pub fn read_pid(path: &Path) -> i32 {
    wait_for(10, &format!("pid file {}", path.display()), || {
        std::fs::read_to_string(path).is_ok_and(|t| t.trim().parse::<i32>().is_ok())
    });
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}
