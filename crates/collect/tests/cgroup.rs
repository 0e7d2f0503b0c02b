//! The cgroup input against real cgroups of this host.

#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use collect::config::CgroupInput;
use collect::inputs::cgroup::{Cgroup, Layout};
use collect::line_protocol::FieldValue;

fn field(points: &[collect::line_protocol::Point], m: &str, f: &str) -> Option<FieldValue> {
    points
        .iter()
        .find(|p| p.measurement == m)?
        .fields
        .iter()
        .find(|(k, _)| k == f)
        .map(|(_, v)| v.clone())
}

/// A cgroup v2 hierarchy: the unified mount at /sys/fs/cgroup, or the
/// hybrid layout's /sys/fs/cgroup/unified.
fn v2_root() -> PathBuf {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").exists())
        .expect("a cgroup2 mount on this host")
}

/// Removes the child cgroup even when the test fails.
struct Child(PathBuf, std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.1.kill();
        let _ = self.1.wait();
        let start = Instant::now();
        while fs::remove_dir(&self.0).is_err() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn v2_cpu_time_of_a_process_in_a_child_cgroup() {
    let root = v2_root();
    let name = format!("collect-test-v2-{}", std::process::id());
    let dir = root.join(&name);
    fs::create_dir(&dir).unwrap();
    // Joins the cgroup, burns 0.5 s of CPU, says so, then idles.
    let script = format!(
        "echo $$ > {procs}; exec /usr/bin/python3 -c \"import time\n\
         t=time.process_time()\nwhile time.process_time()-t<0.5: pass\n\
         print('ready', flush=True); time.sleep(60)\"",
        procs = dir.join("cgroup.procs").display()
    );
    let guard = Child(dir.clone(), support::spawn_until_ready(&script));

    let mut cg = Cgroup::new(&CgroupInput {
        enabled: true,
        root: root.clone(),
        path: name.clone(),
    });
    assert_eq!(cg.layout(), &Layout::V2(dir.clone()));
    let points = cg.gather();
    let Some(FieldValue::Integer(usage)) = field(&points, "docker_container_cpu", "usage_total")
    else {
        panic!("no usage_total in {points:?}");
    };
    assert!(
        (400_000_000..30_000_000_000).contains(&usage),
        "usage_total {usage} ns after 0.5 s of CPU"
    );
    // The second gather has a rate; the process is idle now.
    std::thread::sleep(Duration::from_millis(200));
    let points = cg.gather();
    let Some(FieldValue::Float(pct)) = field(&points, "docker_container_cpu", "usage_percent")
    else {
        panic!("no usage_percent in {points:?}");
    };
    assert!((0.0..50.0).contains(&pct), "idle usage_percent {pct}");
    drop(guard);
    assert!(!dir.exists(), "test cgroup left behind");
}

#[test]
fn no_cgroup_gives_no_container_points_and_no_error() {
    let empty = tempfile::tempdir().unwrap();
    let mut cg = Cgroup::new(&CgroupInput {
        enabled: true,
        root: empty.path().to_path_buf(),
        path: String::new(),
    });
    assert_eq!(cg.layout(), &Layout::None);
    assert!(cg.gather().is_empty());
}
