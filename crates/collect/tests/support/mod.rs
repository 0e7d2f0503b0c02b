//! Shared pieces of the integration tests: running the real `collect`
//! binary, querying InfluxDB with InfluxQL, polling with a deadline, and a
//! throw-away child cgroup.

#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The start of a test's collect config: one-second rounds, `service` with
/// pod `<service>-0`, and the output to `influx` retrying within a second,
/// so that a test waits little after an InfluxDB hiccup.
pub fn config_head(influx: &str, service: &str) -> String {
    format!(
        r#"interval = "1s"
service = "{service}"
pod = "{service}-0"
[output]
url = "{influx}"
username = ""
retry_initial = "200ms"
retry_max = "1s"
"#
    )
}

/// The collect binary with a config file, stopped (SIGTERM) when dropped.
#[derive(Debug)]
pub struct Collect {
    pub child: Child,
    pub dir: tempfile::TempDir,
}

impl Collect {
    pub fn start(config: &str) -> Collect {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collect.toml");
        fs::write(&path, config).unwrap();
        let log = fs::File::create(dir.path().join("collect.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_collect"))
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "collect=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn collect");
        Collect { child, dir }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("collect.log")).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} collect");
    }

    /// SIGSTOP, and wait until the kernel reports the process stopped.
    pub fn freeze(&self) {
        self.signal("STOP");
        let stat = format!("/proc/{}/stat", self.child.id());
        wait_for("collect to be stopped", Duration::from_secs(10), || {
            let text = fs::read_to_string(&stat).ok()?;
            // The state follows the command name, which is in parentheses.
            let state = text.rsplit_once(')')?.1.split_whitespace().next()?;
            (state == "T").then_some(())
        });
    }

    /// SIGTERM and wait for the exit (collect flushes first).
    /// Lets a frozen collect run again and asserts it stays up for all of
    /// `outage` (the caller has just taken its output away).
    pub fn resume_through(&mut self, outage: Duration) {
        self.signal("CONT");
        let down = Instant::now();
        while down.elapsed() < outage {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "collect exited during the outage:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn stop(&mut self) -> std::process::ExitStatus {
        if let Ok(Some(s)) = self.child.try_wait() {
            return s;
        }
        self.signal("TERM");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("collect did not stop on SIGTERM; log:\n{}", self.log());
    }
}

/// Runs `collect --check-config --config <path>` to completion.
pub fn check_config(path: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_collect"))
        .arg("--check-config")
        .arg("--config")
        .arg(path)
        .output()
        .unwrap()
}

impl Drop for Collect {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(self.child.id().to_string())
                .status();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs an InfluxQL query and returns the `series` of the first result.
pub fn query(base: &str, db: &str, q: &str, auth: Option<(&str, &str)>) -> Vec<Value> {
    try_query(base, db, q, auth).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`query`], with InfluxDB's error (e.g. no database yet) as `Err`.
pub fn try_query(
    base: &str,
    db: &str,
    q: &str,
    auth: Option<(&str, &str)>,
) -> Result<Vec<Value>, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-G"])
        .arg(format!("{base}/query"))
        .arg("--data-urlencode")
        .arg(format!("db={db}"))
        .arg("--data-urlencode")
        .arg(format!("q={q}"))
        .arg("--data-urlencode")
        .arg("epoch=ns");
    if let Some((u, p)) = auth {
        cmd.arg("-u").arg(format!("{u}:{p}"));
    }
    let out = cmd.output().expect("run curl");
    assert!(out.status.success(), "curl: {out:?}");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let result = &v["results"][0];
    if result.get("error").is_some() || v.get("error").is_some() {
        return Err(format!("{q}: {v}"));
    }
    Ok(result["series"].as_array().cloned().unwrap_or_default())
}

/// Rows of the first series as maps column -> value.
pub fn rows(series: &[Value]) -> Vec<serde_json::Map<String, Value>> {
    let Some(s) = series.first() else {
        return Vec::new();
    };
    let cols: Vec<String> = s["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    s["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            cols.iter()
                .cloned()
                .zip(row.as_array().unwrap().iter().cloned())
                .collect()
        })
        .collect()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(250));
    }
}

/// A child cgroup made for one test and removed when dropped, in whatever
/// layout this host has: cgroup v2 at /sys/fs/cgroup, else v1 hierarchies
/// under /sys/fs/cgroup (the hybrid layout's empty cgroup2 at
/// /sys/fs/cgroup/unified is not used: collect reads v1 there too).
#[derive(Debug)]
pub struct TestCgroup {
    pub root: PathBuf,
    pub name: String,
    v2: bool,
    /// The directories made (one for v2, one per v1 hierarchy).
    dirs: Vec<PathBuf>,
}

/// The controllers whose figures collect reports.
const CONTROLLERS: [&str; 4] = ["memory", "cpu", "pids", "io"];
const V1_HIERARCHIES: [&str; 6] = ["memory", "cpu", "cpuacct", "cpu,cpuacct", "pids", "blkio"];

impl TestCgroup {
    pub fn create(tag: &str) -> TestCgroup {
        let root = PathBuf::from("/sys/fs/cgroup");
        let name = format!("collect-test-{tag}-{}", std::process::id());
        let v2 = root.join("cgroup.controllers").exists();
        let dirs: Vec<PathBuf> = if v2 {
            // The child has a controller's files only if the parent hands
            // the controller down; most hosts already do. A controller the
            // parent cannot hand down shows up as a missing file later.
            let control = root.join("cgroup.subtree_control");
            let enabled = fs::read_to_string(&control).unwrap_or_default();
            for c in CONTROLLERS {
                if !enabled.split_whitespace().any(|e| e == c) {
                    let _ = fs::write(&control, format!("+{c}"));
                }
            }
            vec![root.join(&name)]
        } else {
            // `cpu` and `cpuacct` are often links to one `cpu,cpuacct`
            // hierarchy: make each real directory once.
            let mut hierarchies: Vec<PathBuf> = Vec::new();
            for h in V1_HIERARCHIES {
                if let Ok(real) = fs::canonicalize(root.join(h))
                    && real.is_dir()
                    && !hierarchies.contains(&real)
                {
                    hierarchies.push(real);
                }
            }
            hierarchies.into_iter().map(|h| h.join(&name)).collect()
        };
        assert!(!dirs.is_empty(), "no cgroup hierarchy to test with");
        for d in &dirs {
            fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        TestCgroup {
            root,
            name,
            v2,
            dirs,
        }
    }

    /// The `cgroup.procs` files a process writes its pid to, to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// The directory holding `file` (v2: the one directory).
    fn dir_with(&self, file: &str) -> &Path {
        self.dirs
            .iter()
            .find(|d| d.join(file).exists())
            .unwrap_or_else(|| panic!("no {file} in {:?}", self.dirs))
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.dir_with(file).join(file);
        fs::write(&path, value)
            .unwrap_or_else(|e| panic!("write {value} to {}: {e}", path.display()));
    }

    /// Sets the memory limit (v2 `memory.max`, v1 `memory.limit_in_bytes`).
    pub fn set_memory_limit(&self, bytes: u64) {
        let file = if self.v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        self.write(file, &bytes.to_string());
    }

    /// Lets the cgroup use `quota_us` of CPU time per 100 ms period.
    pub fn set_cpu_quota(&self, quota_us: u64) {
        if self.v2 {
            self.write("cpu.max", &format!("{quota_us} 100000"));
        } else {
            self.write("cpu.cfs_period_us", "100000");
            self.write("cpu.cfs_quota_us", &quota_us.to_string());
        }
    }

    /// Makes the kernel account this cgroup's I/O on the disk holding
    /// `path`. v2 always does (`io.stat`); v1's `blkio.throttle.*` files
    /// count only on devices with a throttle rule on recent kernels, so
    /// this sets one far above any real rate (1 TiB/s of writes).
    pub fn account_io_on(&self, path: &Path) {
        if self.v2 {
            return;
        }
        let (major, minor) = whole_disk_of(path);
        self.write(
            "blkio.throttle.write_bps_device",
            &format!("{major}:{minor} {}", 1u64 << 40),
        );
    }
}

/// `MAJ:MIN` of the whole disk under the file system holding `path` (a
/// throttle rule cannot name a partition).
pub fn whole_disk_of(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    let dev = fs::metadata(path).unwrap().dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    assert!(
        sys.exists(),
        "{} is not on a block device ({major}:{minor}); pick a directory on a disk",
        path.display()
    );
    let sys = fs::canonicalize(&sys).unwrap();
    let disk = if sys.join("partition").exists() {
        sys.parent().unwrap().to_path_buf()
    } else {
        sys
    };
    let dev = fs::read_to_string(disk.join("dev")).unwrap();
    let (major, minor) = dev.trim().split_once(':').unwrap();
    (major.parse().unwrap(), minor.parse().unwrap())
}

/// A directory on a real disk (not tmpfs, whose writes never reach a
/// block device), removed when dropped: under the build's target dir.
pub fn disk_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let fs = nix::sys::statfs::statfs(dir.path()).unwrap();
    assert_ne!(
        fs.filesystem_type(),
        nix::sys::statfs::TMPFS_MAGIC,
        "{} is on tmpfs",
        dir.path().display()
    );
    dir
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            // Anything left in it was started by the test: end it, then
            // remove the cgroup (possible once it is empty).
            if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            let start = Instant::now();
            while fs::remove_dir(d).is_err() && start.elapsed() < Duration::from_secs(5) {
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A python process that joins `cgroup` (if any) before allocating and
/// touching `mib` MiB, then sleeps (at most two minutes); the marker is in its
/// command line for the procstat pattern.
pub fn allocator(marker: &str, mib: usize, cgroup: Option<&TestCgroup>) -> Allocator {
    let join: String = cgroup
        .map(|c| {
            c.procs_files()
                .iter()
                .map(|f| format!("echo $$ > {}; ", f.display()))
                .collect()
        })
        .unwrap_or_default();
    let script = format!(
        "{join}exec /usr/bin/python3 -c \"import sys,time; b=b'x'*({mib}<<20); \
         print('ready', flush=True); time.sleep(120)\" {marker}"
    );
    Allocator(spawn_until_ready(&script))
}

/// Runs `sh -c script` and waits until it prints `ready` on its stdout.
pub fn spawn_until_ready(script: &str) -> Child {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut buf).expect("child ready");
    assert_eq!(&buf, b"ready\n");
    child
}

/// The allocator process, killed when dropped.
#[derive(Debug)]
pub struct Allocator(pub Child);

impl Allocator {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Allocator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a container does, inside `cgroup`: writes `direct_mib` MiB to a
/// file in `dir` with O_DIRECT and fsync (block I/O), `cached_mib` MiB to
/// another through the page cache (file memory), leaves `sleepers`
/// `sleep` processes, burns 0.1 s of CPU (throttled under a quota), then
/// idles (at most two minutes). `dir` must be on a disk (see [`disk_dir`]).
pub fn workload(
    cgroup: &TestCgroup,
    dir: &Path,
    direct_mib: usize,
    cached_mib: usize,
    sleepers: usize,
) -> Allocator {
    let join: String = cgroup
        .procs_files()
        .iter()
        .map(|f| format!("echo $$ > {}; ", f.display()))
        .collect();
    let sleep = "sleep 120 </dev/null >/dev/null 2>&1 & ".repeat(sleepers);
    let script = format!(
        "{join}\
         dd if=/dev/zero of={dir}/direct bs=1M count={direct_mib} oflag=direct conv=fsync status=none || exit 1; \
         dd if=/dev/zero of={dir}/cached bs=1M count={cached_mib} status=none || exit 1; \
         {sleep}\
         exec /usr/bin/python3 -c \"import time\n\
         t=time.process_time()\nwhile time.process_time()-t<0.1: pass\n\
         print('ready', flush=True); time.sleep(120)\"",
        dir = dir.display()
    );
    Allocator(spawn_until_ready(&script))
}
