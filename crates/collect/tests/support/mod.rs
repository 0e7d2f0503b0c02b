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

    /// SIGTERM and wait for the exit (collect flushes first).
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
/// layout this host has: cgroup v2 with the memory controller at
/// /sys/fs/cgroup, else v1 hierarchies under /sys/fs/cgroup.
#[derive(Debug)]
pub struct TestCgroup {
    pub root: PathBuf,
    pub name: String,
    /// The directories made (one for v2, one per v1 hierarchy).
    dirs: Vec<PathBuf>,
}

impl TestCgroup {
    pub fn create(tag: &str) -> TestCgroup {
        let root = PathBuf::from("/sys/fs/cgroup");
        let name = format!("collect-test-{tag}-{}", std::process::id());
        let dirs: Vec<PathBuf> = if root.join("cgroup.controllers").exists() {
            // The child gets memory.current only if the parent hands the
            // memory controller down; most hosts already do.
            let control = root.join("cgroup.subtree_control");
            let enabled = fs::read_to_string(&control).unwrap_or_default();
            if !enabled.split_whitespace().any(|c| c == "memory") {
                let _ = fs::write(&control, "+memory");
            }
            vec![root.join(&name)]
        } else {
            ["memory", "cpuacct", "pids"]
                .iter()
                .map(|h| root.join(h))
                .filter(|h| h.is_dir())
                .map(|h| h.join(&name))
                .collect()
        };
        assert!(!dirs.is_empty(), "no cgroup hierarchy to test with");
        for d in &dirs {
            fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        TestCgroup { root, name, dirs }
    }

    /// The `cgroup.procs` files a process writes its pid to, to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    pub fn memory_dir(&self) -> &Path {
        self.dirs
            .iter()
            .find(|d| d.parent().is_some_and(|p| p.ends_with("memory")))
            .unwrap_or(&self.dirs[0])
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            // Move anything left back to the parent, then remove.
            if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
                let parent = d.parent().unwrap().join("cgroup.procs");
                for pid in procs.lines() {
                    let _ = fs::write(&parent, pid);
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
