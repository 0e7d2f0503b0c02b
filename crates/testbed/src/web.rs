//! Debian's nginx and php-fpm, each started with a config of its own in a
//! temporary directory, listening on loopback, ready once its port accepts
//! connections, and stopped (its files removed) when dropped.
//!
//! ```no_run
//! use testbed::web::{Nginx, PhpFpm, status_locations};
//! let fpm = PhpFpm::start("www", 2).unwrap();
//! let port = testbed::free_port().unwrap();
//! let servers = format!(
//!     "server {{ listen 127.0.0.1:{port};\n{} }}",
//!     status_locations(&fpm)
//! );
//! let nginx = Nginx::start(port, &servers).unwrap();
//! println!("stub_status at http://127.0.0.1:{port}/nginx_status");
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::{Daemon, Error, free_port, io_err, read_log, temp_dir};

/// php-fpm with one pool of static workers on a free loopback port; the
/// pool's status page answers at `/fpm-status`.
#[derive(Debug)]
pub struct PhpFpm {
    // Declared before `dir`: the server stops before its files go.
    server: Daemon,
    dir: TempDir,
    port: u16,
}

impl PhpFpm {
    /// Starts pool `pool` with `workers` worker processes.
    pub fn start(pool: &str, workers: u32) -> Result<Self, Error> {
        let dir = temp_dir("testbed-php-fpm-")?;
        let d = dir.path();
        let port = free_port()?;
        let conf = d.join("php-fpm.conf");
        fs::write(
            &conf,
            format!(
                "[global]\npid = {d}/php-fpm.pid\nerror_log = {d}/php-fpm.log\ndaemonize = no\n\
                 [{pool}]\nuser = root\ngroup = root\nlisten = 127.0.0.1:{port}\n\
                 pm = static\npm.max_children = {workers}\npm.status_path = /fpm-status\n\
                 catch_workers_output = yes\n",
                d = d.display()
            ),
        )
        .map_err(io_err("write php-fpm.conf"))?;
        let server = Daemon::start(
            "php-fpm",
            fpm_program()?,
            ["-F".into(), "-R".into(), "-y".into(), conf],
            d.join("php-fpm.out"),
            port,
        )?;
        Ok(PhpFpm { server, dir, port })
    }

    /// The FastCGI address, `127.0.0.1:PORT`, as nginx's `fastcgi_pass` takes it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// php-fpm's error log and its output, for failure messages.
    pub fn logs(&self) -> String {
        logs(&[&self.dir.path().join("php-fpm.log"), self.server.log()])
    }
}

/// Debian names its php-fpm binary after the PHP version.
fn fpm_program() -> Result<&'static str, Error> {
    ["php-fpm8.2", "php-fpm"]
        .into_iter()
        .find(|program| {
            Command::new(program)
                .arg("-v")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })
        .ok_or_else(|| Error::Command {
            program: "php-fpm".into(),
            detail: "neither php-fpm8.2 nor php-fpm is installed".into(),
        })
}

/// nginx (one worker, as root) serving the caller's `server` blocks; its
/// pid file, logs and temporary files stay in its own directory.
#[derive(Debug)]
pub struct Nginx {
    // Declared before `dir`: the server stops before its files go.
    server: Daemon,
    dir: TempDir,
}

impl Nginx {
    /// `http` is the inside of the `http { }` block (server blocks, includes);
    /// nginx counts as ready when `port`, one its servers listen on, accepts.
    pub fn start(port: u16, http: &str) -> Result<Self, Error> {
        let dir = temp_dir("testbed-nginx-")?;
        let d = dir.path();
        let conf = d.join("nginx.conf");
        fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\n\
                 pid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n\
                 client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                 {http}\n}}\n",
                d = d.display()
            ),
        )
        .map_err(io_err("write nginx.conf"))?;
        // -e: the error log before the config is read is ours too, not
        // /var/log/nginx's.
        let server = Daemon::start(
            "nginx",
            "nginx",
            [
                "-p".into(),
                d.to_path_buf(),
                "-c".into(),
                conf,
                "-e".into(),
                d.join("error.log"),
            ],
            d.join("nginx.out"),
            port,
        )?;
        Ok(Nginx { server, dir })
    }

    /// The master process's pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("nginx.pid")
    }

    /// nginx's error log and its output, for failure messages.
    pub fn logs(&self) -> String {
        logs(&[&self.dir.path().join("error.log"), self.server.log()])
    }
}

/// The `location`s of a pod's local status server: `/nginx_status`
/// (stub_status) and `/fpm-status` (`fpm`'s pool status page).
pub fn status_locations(fpm: &PhpFpm) -> String {
    format!(
        "location = /nginx_status {{ stub_status; }}\n\
         location = /fpm-status {{\n  include /etc/nginx/fastcgi_params;\n\
           fastcgi_param SCRIPT_NAME /fpm-status;\n\
           fastcgi_param SCRIPT_FILENAME /fpm-status;\n\
           fastcgi_pass {};\n}}\n",
        fpm.address()
    )
}

fn logs(files: &[&Path]) -> String {
    files
        .iter()
        .map(|f| format!("--- {}\n{}", f.display(), read_log(f)))
        .collect()
}
