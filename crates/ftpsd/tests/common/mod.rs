//! Test fixture: a throw-away CA and certificate (testbed's), a users file, a data root,
//! and the built `ftpsd` binary listening on free loopback ports.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "alice-Pw1";
pub const OTHER_USER: &str = "bob";
pub const OTHER_PASSWORD: &str = "bob-Pw2";

/// Options that differ between tests.
#[derive(Debug, Clone)]
pub struct Options {
    pub max_sessions: usize,
    pub max_unauthenticated: usize,
    pub login_timeout_seconds: u64,
    pub idle_timeout_seconds: u64,
    pub failure_delay_ms: u64,
    pub max_failures: u32,
    pub lockout_seconds: u64,
    pub per_source: bool,
    pub max_concurrent_checks: usize,
    pub passive_ports: u16,
    pub connect_timeout_seconds: u64,
    pub handshake_timeout_seconds: u64,
    pub require_session_reuse: bool,
    /// The data root: a directory of the test's (None: one in its temporary directory).
    pub data_root: Option<PathBuf>,
    /// PBKDF2 iterations of the test users' hashes.
    pub iterations: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_sessions: 100,
            max_unauthenticated: 64,
            login_timeout_seconds: 30,
            idle_timeout_seconds: 60,
            failure_delay_ms: 200,
            max_failures: 5,
            lockout_seconds: 60,
            per_source: true,
            max_concurrent_checks: 0,
            passive_ports: 20,
            connect_timeout_seconds: 9,
            handshake_timeout_seconds: 5,
            require_session_reuse: true,
            data_root: None,
            iterations: 1000,
        }
    }
}

/// A running ftpsd; killed on drop.
#[derive(Debug)]
pub struct Ftpsd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub metrics_port: u16,
    child: Child,
    data_root: PathBuf,
    /// The CA and the server's certificate, for 127.0.0.1 and localhost.
    pki: testbed::tls::TestCa,
}

impl Ftpsd {
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = testbed::tls::TestCa::new("ftpsd test CA").unwrap();
        let certificate = pki
            .issue(&["localhost"], &[std::net::Ipv4Addr::LOCALHOST.into()])
            .unwrap();
        let data = options.data_root.clone().unwrap_or_else(|| {
            let data = dir.path().join("data");
            std::fs::create_dir(&data).unwrap();
            data
        });
        let iterations = NonZeroU32::new(options.iterations).unwrap();
        let users = format!(
            "# test users\n{USER}:{}\n{OTHER_USER}:{}\n",
            ftpsd::users::PasswordHash::create(PASSWORD, iterations).unwrap(),
            ftpsd::users::PasswordHash::create(OTHER_PASSWORD, iterations).unwrap()
        );
        std::fs::write(dir.path().join("users"), users).unwrap();
        // ftpsd on `first` (control), `first + 1` (metrics) and the passive
        // ports after them.
        let config_path = dir.path().join("ftpsd.toml");
        let log_path = dir.path().join("ftpsd.log");
        let users_path = dir.path().join("users");
        let data_path = data.clone();
        let spawn = |first: u16| {
            let (port, metrics_port, pasv) = (first, first + 1, first + 2);
            let config = format!(
                r#"
listen = "127.0.0.1:{port}"
metrics_listen = "127.0.0.1:{metrics_port}"
data_root = "{data}"
users_file = "{users}"
max_sessions = {max_sessions}
max_unauthenticated = {max_unauthenticated}
login_timeout_seconds = {login_timeout}
idle_timeout_seconds = {idle}
[tls]
cert = "{cert}"
key = "{key}"
require_session_reuse = {reuse}
[passive]
port_min = {pasv}
port_max = {pasv_max}
address = "127.0.0.1"
connect_timeout_seconds = {connect_timeout}
handshake_timeout_seconds = {handshake_timeout}
[login]
failure_delay_ms = {delay}
max_failures = {max_failures}
lockout_seconds = {lockout}
per_source = {per_source}
max_concurrent_checks = {checks}
"#,
                max_unauthenticated = options.max_unauthenticated,
                login_timeout = options.login_timeout_seconds,
                reuse = options.require_session_reuse,
                connect_timeout = options.connect_timeout_seconds,
                handshake_timeout = options.handshake_timeout_seconds,
                per_source = options.per_source,
                checks = options.max_concurrent_checks,
                data = data_path.display(),
                users = users_path.display(),
                max_sessions = options.max_sessions,
                idle = options.idle_timeout_seconds,
                cert = certificate.cert.display(),
                key = certificate.key.display(),
                pasv_max = pasv + options.passive_ports - 1,
                delay = options.failure_delay_ms,
                max_failures = options.max_failures,
                lockout = options.lockout_seconds,
            );
            std::fs::write(&config_path, config).unwrap();
            let log = std::fs::File::create(&log_path).unwrap();
            Command::new(env!("CARGO_BIN_EXE_ftpsd"))
                .arg("--config")
                .arg(&config_path)
                .env("RUST_LOG", "info,libunftp=warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap()
        };
        // The ports come from a block below the kernel's ephemeral range: a
        // port the kernel hands out as free may be taken by a client's
        // outgoing connection (another test's) before ftpsd binds it, which
        // made tests fail now and then. A block that another test took
        // meanwhile is given up for another.
        let first = testbed::free_port_range(options.passive_ports + 2).unwrap();
        let child = spawn(first);
        let mut server = Self {
            dir,
            port: first,
            metrics_port: first + 1,
            child,
            data_root: data,
            pki,
        };
        let mut attempts = 1;
        while let Err(log) = server.wait_ready() {
            assert!(
                attempts < 5 && log.contains("Address already in use"),
                "ftpsd exited early {log}"
            );
            attempts += 1;
            let first = testbed::free_port_range(options.passive_ports + 2).unwrap();
            (server.port, server.metrics_port) = (first, first + 1);
            server.child = spawn(first);
        }
        server
    }

    /// Waits until ftpsd listens; its exit status and log if it exits first.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("({status}): {}", self.log()));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.metrics_port)).is_ok()
            {
                return Ok(());
            }
            assert!(Instant::now() < deadline, "ftpsd not ready: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.pki.ca_cert()
    }

    pub fn data(&self) -> PathBuf {
        self.data_root.clone()
    }

    pub fn home(&self, user: &str) -> PathBuf {
        self.data().join(user)
    }

    pub fn url(&self) -> String {
        format!("ftp://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ftpsd.log")).unwrap_or_default()
    }

    /// The text of `GET /metrics`, fetched with curl.
    pub fn metrics(&self) -> String {
        let out = run(Command::new("curl").args([
            "-sS",
            "--fail",
            &format!("http://127.0.0.1:{}/metrics", self.metrics_port),
        ]));
        assert!(out.status.success(), "metrics: {}", stderr(&out));
        stdout(&out)
    }

    /// Runs the Python client script with a scenario.
    pub fn python(&self, scenario: &str, extra: &[&str]) -> Output {
        self.python_script("ftps_client.py", scenario, extra)
    }

    /// Runs a scenario of one of the Python scripts of `tests/` against this server.
    pub fn python_script(&self, file: &str, scenario: &str, extra: &[&str]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(file);
        run(Command::new("python3")
            .arg(script)
            .arg(scenario)
            .args(["--port", &self.port.to_string(), "--cafile"])
            .arg(self.ca())
            .args(["--user", USER, "--password", PASSWORD])
            .args(extra))
    }

    /// Runs lftp with FTPS forced and the certificate verified against the test CA.
    pub fn lftp(&self, user: &str, password: &str, commands: &str) -> Output {
        run(&mut self.lftp_command(user, password, commands))
    }

    /// The lftp command of [`Ftpsd::lftp`], to spawn.
    pub fn lftp_command(&self, user: &str, password: &str, commands: &str) -> Command {
        let script = format!(
            "set ssl:ca-file {ca}; set ssl:verify-certificate true; set ftp:ssl-force true; \
             set ftp:ssl-protect-data true; set ftp:passive-mode true; set net:max-retries 1; \
             set net:timeout 15; set net:reconnect-interval-base 1; set cmd:fail-exit true; \
             open -u {user},{password} ftp://localhost:{port}; {commands}; quit",
            ca = self.ca().display(),
            port = self.port,
        );
        let mut command = Command::new("lftp");
        command.arg("-c").arg(script);
        command
    }

    /// Runs curl with TLS required, against the test CA.
    pub fn curl(&self, args: &[&str]) -> Output {
        run(&mut self.curl_command(args))
    }

    /// The curl command of [`Ftpsd::curl`], to spawn.
    pub fn curl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("curl");
        command.args(self.curl_options()).args(args);
        command
    }

    /// curl's options for TLS against the test CA as [`USER`] (repeated
    /// after `--next`). Each transfer writes its own result to stderr
    /// ([`assert_transfers_succeeded`]): with `--next`, curl's exit status is
    /// the last transfer's only.
    pub fn curl_options(&self) -> Vec<String> {
        [
            "-sS",
            "--write-out",
            CURL_TRANSFER_LINE,
            "--ssl-reqd",
            "--max-time",
            "60",
            "--cacert",
            self.ca().to_str().unwrap(),
            "-u",
            &format!("{USER}:{PASSWORD}"),
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

/// What curl writes to stderr after each transfer (`--write-out`).
const CURL_TRANSFER_LINE: &str =
    "%{stderr}curl transfer: exit=%{exitcode} reply=%{response_code} %{url_effective}\n";

/// Asserts that every transfer of a curl run reported exit 0, and that the
/// run reported at least one.
pub fn assert_transfers_succeeded(out: &Output, what: &str, server_log: impl Fn() -> String) {
    let log = stderr(out);
    let results: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("curl transfer: "))
        .collect();
    assert!(
        out.status.success()
            && !results.is_empty()
            && results.iter().all(|l| l.contains(" exit=0 ")),
        "curl {what} failed ({}):\n{log}\nserver log:\n{}",
        out.status,
        server_log()
    );
}

/// Spawns every command at once, then waits for all of them; each is
/// bounded by its own client timeout, and the whole by `deadline`.
pub fn run_all_at_once(commands: Vec<Command>, deadline: Duration) -> Vec<Output> {
    let children: Vec<Child> = commands
        .into_iter()
        .map(|mut c| {
            c.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {c:?}: {e}"))
        })
        .collect();
    let end = Instant::now() + deadline;
    children
        .into_iter()
        .map(|mut child| {
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > end {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            child.wait_with_output().unwrap()
        })
        .collect()
}

impl Drop for Ftpsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Reads the control connection's first line (the greeting or a refusal).
pub fn first_reply(port: u16) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

/// Polls `check` until it holds or the deadline passes.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of a metric line (exact series name with labels).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Asserts each `(series, value)` of `expected` against one scrape of the
/// metrics; a failure names the series and shows the whole scrape.
#[track_caller]
pub fn assert_metrics(metrics: &str, expected: &[(&str, f64)]) {
    for &(series, value) in expected {
        assert_eq!(
            metric(metrics, series),
            Some(value),
            "{series} in\n{metrics}"
        );
    }
}

/// Writes a pseudo-random (incompressible) file of `mib` MiB at `path` and
/// returns its sha256.
pub fn random_file(path: &Path, mib: usize) -> String {
    use std::io::{Read, Write};
    let mut urandom = std::fs::File::open("/dev/urandom").unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..mib {
        urandom.read_exact(&mut chunk).unwrap();
        out.write_all(&chunk).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    sha256(path)
}

/// The sha256 of a file, with `sha256sum`.
pub fn sha256(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    assert!(out.status.success(), "sha256sum: {}", stderr(&out));
    stdout(&out).split_whitespace().next().unwrap().to_owned()
}

/// Files outside alice's home and symlinks in it pointing out, for the
/// traversal tests: `<tmp>/outside/outside.txt` (an /etc-like directory),
/// bob's home with `secret.txt`, alice's `hello.txt`, and in alice's home
/// `etc_link -> /etc`, `bob_abs -> <bob's home>`, `bob_rel -> ../bob`,
/// `out_link -> <tmp>/outside`, `out_file_link -> <tmp>/outside/outside.txt`.
#[derive(Debug)]
pub struct TraversalTree {
    pub outside: PathBuf,
    pub bob: PathBuf,
    pub alice: PathBuf,
}

impl Ftpsd {
    pub fn traversal_tree(&self) -> TraversalTree {
        let outside = self.dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("outside.txt"), "outside\n").unwrap();
        let bob = self.home(OTHER_USER);
        std::fs::create_dir(&bob).unwrap();
        std::fs::write(bob.join("secret.txt"), "bob's secret\n").unwrap();
        let alice = self.home(USER);
        std::fs::create_dir(&alice).unwrap();
        std::fs::write(alice.join("hello.txt"), "hello\n").unwrap();
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, alice.join(name)).unwrap()
        };
        link("/etc".as_ref(), "etc_link");
        link(&bob, "bob_abs");
        link("../bob".as_ref(), "bob_rel");
        link(&outside, "out_link");
        link(&outside.join("outside.txt"), "out_file_link");
        TraversalTree {
            outside,
            bob,
            alice,
        }
    }

    /// Everything in the test's temp dir except alice's home and the server
    /// log: path -> kind, mode and content (or link target).
    pub fn snapshot_outside_home(&self) -> std::collections::BTreeMap<PathBuf, String> {
        use std::os::unix::fs::PermissionsExt;
        let skip = [self.home(USER), self.dir.path().join("ftpsd.log")];
        let mut seen = std::collections::BTreeMap::new();
        let mut stack = vec![self.dir.path().to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let mode = meta.permissions().mode();
                let what = if meta.is_symlink() {
                    format!("link {:?}", std::fs::read_link(&path).unwrap())
                } else if meta.is_dir() {
                    format!("dir {mode:o}")
                } else {
                    format!("file {mode:o} {:?}", std::fs::read(&path).unwrap())
                };
                if meta.is_dir() && !skip.contains(&path) {
                    stack.push(path.clone());
                }
                if path != skip[1] {
                    seen.insert(path, what);
                }
            }
        }
        seen
    }
}

/// Asserts alice's home after a traversal batch: the tree's entries plus
/// exactly what the allowed commands made (`inside.txt`, `inside_dir`,
/// `movable.txt` renamed to `moved.txt`).
pub fn assert_home_after_traversal(alice: &Path) {
    let mut inside: Vec<_> = std::fs::read_dir(alice)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    inside.sort();
    assert_eq!(
        inside,
        [
            "bob_abs",
            "bob_rel",
            "etc_link",
            "hello.txt",
            "inside.txt",
            "inside_dir",
            "moved.txt",
            "out_file_link",
            "out_link"
        ]
    );
}

/// Checks each concurrent client's output: `succeeded` passed, the listing
/// showed its `c-<i>.bin`, and both the download `<local>/back-<i>.bin` and
/// the upload in alice's home equal `payload(i)`.
pub fn assert_each_client_round_trip(
    outputs: &[Output],
    server: &Ftpsd,
    local: &Path,
    payload: impl Fn(usize) -> Vec<u8>,
    succeeded: impl Fn(&Output, &Ftpsd, &str),
) {
    for (i, out) in outputs.iter().enumerate() {
        succeeded(out, server, &format!("client {i}"));
        assert!(
            stdout(out).lines().any(|n| n == format!("c-{i}.bin")),
            "client {i} listing: {}",
            stdout(out)
        );
        assert!(
            std::fs::read(local.join(format!("back-{i}.bin"))).unwrap() == payload(i),
            "client {i} download differs"
        );
        assert!(
            std::fs::read(server.home(USER).join(format!("c-{i}.bin"))).unwrap() == payload(i),
            "client {i} upload differs"
        );
    }
}

/// A remote named `ftpsd` for rclone, from environment variables only: the
/// FTP backend with `explicit_tls`, every other setting rclone's default,
/// the certificate verified against the test CA (Go reads `SSL_CERT_FILE`).
impl Ftpsd {
    pub fn rclone(&self, args: &[&str]) -> Output {
        run(&mut self.rclone_command(args))
    }

    pub fn rclone_command(&self, args: &[&str]) -> Command {
        let obscured = run(Command::new("rclone").args(["obscure", PASSWORD]));
        assert!(
            obscured.status.success(),
            "rclone obscure: {}",
            stderr(&obscured)
        );
        let mut command = Command::new("rclone");
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("SSL_CERT_FILE", self.ca())
            .env("RCLONE_CONFIG", self.dir.path().join("rclone.conf"))
            .env("RCLONE_CONFIG_FTPSD_TYPE", "ftp")
            .env("RCLONE_CONFIG_FTPSD_HOST", "127.0.0.1")
            .env("RCLONE_CONFIG_FTPSD_PORT", self.port.to_string())
            .env("RCLONE_CONFIG_FTPSD_USER", USER)
            .env("RCLONE_CONFIG_FTPSD_PASS", stdout(&obscured).trim())
            .env("RCLONE_CONFIG_FTPSD_EXPLICIT_TLS", "true")
            .args(["--retries", "1", "--low-level-retries", "1", "-v"])
            .args(args);
        command
    }
}

/// Every file and directory under `root`: relative path -> "dir" and its
/// mode, or the file's mode, size, modification time (whole seconds) and
/// the sha256 of its content.
pub fn tree(root: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(root).unwrap().to_owned();
            let mode = meta.mode() & 0o7777;
            if meta.is_dir() {
                stack.push(path);
                seen.insert(name, format!("dir {mode:o}"));
            } else {
                seen.insert(
                    name,
                    format!(
                        "file {mode:o}, {} bytes, mtime {}, {}",
                        meta.len(),
                        meta.mtime(),
                        sha256(&path)
                    ),
                );
            }
        }
    }
    seen
}

/// Sets a file's modification time (seconds since the epoch).
pub fn set_mtime(path: &Path, seconds: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(seconds))
        .unwrap();
}

/// A tree of several levels for the sync clients: files with set
/// modification times (none of them now), an empty file, a 5 MiB one, an
/// empty directory.
pub fn sync_tree(root: &Path) {
    let files: [(&str, &[u8]); 5] = [
        ("top.txt", b"top\n"),
        ("a/one.txt", b"one\n"),
        ("a/empty.txt", b""),
        ("a/b/two.txt", b"two two\n"),
        ("a/b/c/deep.txt", b"deep down\n"),
    ];
    for (i, (name, content)) in files.iter().enumerate() {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        set_mtime(&path, 1_600_000_000 + i as u64 * 86_400);
    }
    let big = root.join("a/b/big.bin");
    random_file(&big, 5);
    set_mtime(&big, 1_500_000_000);
}
