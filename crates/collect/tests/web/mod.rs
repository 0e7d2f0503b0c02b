//! Debian's nginx and php-fpm in a temporary directory, as a pod's local
//! status server: `/nginx_status` (stub_status) and `/fpm-status` (the
//! php-fpm pool's status page) on `127.0.0.1:port()`, `/` answering 200.

#![allow(dead_code)]

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const DEADLINE: Duration = Duration::from_secs(30);

/// What `/metrics` serves: a small Prometheus text exposition (nginx
/// unescapes `\\"` and `\\n` in the `return` string).
const METRICS: &str = "# HELP test_requests_total Requests.\\n# TYPE test_requests_total counter\\n\
test_requests_total{code=\\\"200\\\"} 7\\ntest_up 1\\n";

#[derive(Debug)]
pub struct StatusServer {
    dir: TempDir,
    port: u16,
    nginx: Option<Child>,
    fpm: Option<Child>,
}

fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let out = fs::File::create(log).expect("create log");
    let err = out.try_clone().expect("clone log");
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()))
}

fn wait_until(what: &str, log: &Path, child: &mut Child, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if ready() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status}: {}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what} not ready within {DEADLINE:?}: {}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl StatusServer {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("collect-web-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path().to_path_buf();
        let port = testbed::free_port().expect("free port");
        let fpm_bin = ["php-fpm8.2", "php-fpm"]
            .into_iter()
            .find(|b| {
                Command::new(b)
                    .arg("-v")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok()
            })
            .expect("php-fpm installed");

        fs::write(
            d.join("php-fpm.conf"),
            format!(
                "[global]\npid = {d}/php-fpm.pid\nerror_log = {d}/php-fpm.log\ndaemonize = no\n\
                 [status]\nuser = root\ngroup = root\nlisten = {d}/php-fpm.sock\n\
                 pm = static\npm.max_children = 2\npm.status_path = /fpm-status\n",
                d = d.display()
            ),
        )
        .expect("write php-fpm.conf");
        let fpm_log = d.join("php-fpm.out");
        let mut fpm = spawn(
            Command::new(fpm_bin)
                .args(["-F", "-R", "-n", "-y"])
                .arg(d.join("php-fpm.conf")),
            &fpm_log,
        );
        let sock = d.join("php-fpm.sock");
        wait_until("php-fpm", &fpm_log, &mut fpm, || sock.exists());

        fs::write(
            d.join("nginx.conf"),
            format!(
                "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\n\
                 pid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n access_log off;\n\
                 client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
                 server {{\n  listen 127.0.0.1:{port};\n\
                 location = /nginx_status {{ stub_status; }}\n\
                 location = /fpm-status {{\n   include /etc/nginx/fastcgi_params;\n\
                    fastcgi_param SCRIPT_NAME /fpm-status;\n\
                    fastcgi_param SCRIPT_FILENAME /fpm-status;\n\
                    fastcgi_pass unix:{d}/php-fpm.sock;\n  }}\n\
                 location = /metrics {{ default_type text/plain; return 200 \"{METRICS}\"; }}\n\
                 location / {{ return 200 \"ok\\n\"; }}\n }}\n}}\n",
                d = d.display()
            ),
        )
        .expect("write nginx.conf");
        let nginx_log = d.join("nginx.out");
        let mut nginx = spawn(
            Command::new("nginx")
                .arg("-p")
                .arg(&d)
                .arg("-c")
                .arg(d.join("nginx.conf"))
                .arg("-e")
                .arg(d.join("error.log")),
            &nginx_log,
        );
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        wait_until("nginx", &nginx_log, &mut nginx, || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        StatusServer {
            dir,
            port,
            nginx: Some(nginx),
            fpm: Some(fpm),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The nginx master's pid file.
    pub fn nginx_pid_file(&self) -> std::path::PathBuf {
        self.dir.path().join("nginx.pid")
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.nginx.take() {
            terminate(&mut c);
        }
        if let Some(mut c) = self.fpm.take() {
            terminate(&mut c);
        }
    }
}
