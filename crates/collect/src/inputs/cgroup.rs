//! The container as a whole, from its own cgroup: v2 (`cpu.stat`,
//! `memory.current`, `memory.stat`, `pids.current`, `io.stat`), else v1
//! (`cpuacct`, `cpu`, `memory`, `pids`, `blkio` hierarchies).

use serde::Deserialize;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::line_protocol::Point;

/// Which cgroup layout was found at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    V2(PathBuf),
    /// The v1 root (holding `memory/`, `cpuacct/`, ...) and the cgroup path
    /// below each hierarchy.
    V1 {
        root: PathBuf,
        path: String,
    },
    None,
}

#[derive(Debug)]
pub struct Cgroup {
    layout: Layout,
    last_cpu: Option<(u64, Instant)>,
}

/// v1 limits at or above this mean "no limit" (the kernel reports
/// PAGE_COUNTER_MAX rounded to pages, close to i64::MAX).
const V1_UNLIMITED: u64 = 1 << 60;

impl Cgroup {
    pub fn new(config: &CgroupInput) -> Self {
        let layout = detect(&config.root, &config.path);
        match &layout {
            Layout::V2(p) => tracing::info!(path = %p.display(), "cgroup v2"),
            Layout::V1 { root, path } => {
                tracing::info!(root = %root.display(), path, "cgroup v1")
            }
            Layout::None => tracing::warn!(
                root = %config.root.display(),
                "no readable cgroup (neither v2 cgroup.controllers nor v1 memory/cpuacct) there; \
                 container figures are off, the other inputs go on"
            ),
        }
        Cgroup {
            layout,
            last_cpu: None,
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn gather(&mut self) -> Vec<Point> {
        let figures = match &self.layout {
            Layout::V2(dir) => read_v2(dir),
            Layout::V1 { root, path } => read_v1(root, path),
            Layout::None => return Vec::new(),
        };
        let now = Instant::now();
        let mut points = Vec::new();

        let mut cpu = Point::new("docker_container_cpu").tag("cpu", "cpu-total");
        if let Some(usage) = figures.cpu_usage_ns {
            cpu = cpu.field("usage_total", usage);
            if let Some((last, at)) = self.last_cpu {
                let wall = now.duration_since(at).as_nanos() as f64;
                if wall > 0.0 && usage >= last {
                    cpu = cpu.field("usage_percent", (usage - last) as f64 / wall * 100.0);
                }
            }
            self.last_cpu = Some((usage, now));
        }
        cpu = cpu
            .field_opt("usage_in_usermode", figures.cpu_user_ns)
            .field_opt("usage_in_kernelmode", figures.cpu_system_ns)
            .field_opt("throttling_periods", figures.nr_periods)
            .field_opt("throttling_throttled_periods", figures.nr_throttled)
            .field_opt("throttling_throttled_time", figures.throttled_ns);
        points.push(cpu);

        let mut mem = Point::new("docker_container_mem")
            .field_opt("usage", figures.mem_usage)
            .field_opt("limit", figures.mem_limit)
            .field_opt("max_usage", figures.mem_peak);
        if let (Some(u), Some(l)) = (figures.mem_usage, figures.mem_limit)
            && l > 0
        {
            mem = mem.field("usage_percent", u as f64 / l as f64 * 100.0);
        }
        for (k, v) in figures.mem_stat {
            mem = mem.field(k, v);
        }
        points.push(mem);

        points.push(
            Point::new("docker_container_pids")
                .field_opt("current", figures.pids_current)
                .field_opt("limit", figures.pids_limit),
        );

        let mut total = [0u64; 4];
        let mut any_io = false;
        for (device, io) in &figures.io {
            any_io = true;
            for (t, v) in total.iter_mut().zip(io) {
                *t += v;
            }
            points.push(blkio_point(device, io));
        }
        if any_io || figures.io_readable {
            points.push(blkio_point("total", &total));
        }
        points.retain(Point::has_fields);
        points
    }
}

fn blkio_point(device: &str, io: &[u64; 4]) -> Point {
    Point::new("docker_container_blkio")
        .tag("device", device)
        .field("io_service_bytes_recursive_read", io[0])
        .field("io_service_bytes_recursive_write", io[1])
        .field("io_serviced_recursive_read", io[2])
        .field("io_serviced_recursive_write", io[3])
}

/// v2 if the root is a cgroup2 mount, else v1 if it holds v1 hierarchies.
pub fn detect(root: &Path, path: &str) -> Layout {
    let path = path.trim_matches('/');
    if root.join("cgroup.controllers").exists() {
        return Layout::V2(root.join(path));
    }
    let v1 = ["memory", "cpuacct", "cpu,cpuacct"]
        .iter()
        .any(|h| root.join(h).join(path).is_dir());
    if v1 {
        Layout::V1 {
            root: root.to_path_buf(),
            path: path.to_string(),
        }
    } else {
        Layout::None
    }
}

#[derive(Debug, Default)]
struct Figures {
    cpu_usage_ns: Option<u64>,
    cpu_user_ns: Option<u64>,
    cpu_system_ns: Option<u64>,
    nr_periods: Option<u64>,
    nr_throttled: Option<u64>,
    throttled_ns: Option<u64>,
    mem_usage: Option<u64>,
    mem_limit: Option<u64>,
    mem_peak: Option<u64>,
    mem_stat: Vec<(&'static str, u64)>,
    pids_current: Option<u64>,
    pids_limit: Option<u64>,
    /// Per device `MAJ:MIN`: read bytes, write bytes, read ops, write ops.
    io: Vec<(String, [u64; 4])>,
    io_readable: bool,
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines (cpu.stat, memory.stat).
fn read_keyed(path: &Path) -> Vec<(String, u64)> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn get(kv: &[(String, u64)], key: &str) -> Option<u64> {
    kv.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

fn read_v2(dir: &Path) -> Figures {
    let mut f = Figures::default();
    let cpu = read_keyed(&dir.join("cpu.stat"));
    f.cpu_usage_ns = get(&cpu, "usage_usec").map(|u| u * 1000);
    f.cpu_user_ns = get(&cpu, "user_usec").map(|u| u * 1000);
    f.cpu_system_ns = get(&cpu, "system_usec").map(|u| u * 1000);
    f.nr_periods = get(&cpu, "nr_periods");
    f.nr_throttled = get(&cpu, "nr_throttled");
    f.throttled_ns = get(&cpu, "throttled_usec").map(|u| u * 1000);
    f.mem_usage = read_u64(&dir.join("memory.current"));
    // "max" does not parse: no limit.
    f.mem_limit = read_u64(&dir.join("memory.max"));
    f.mem_peak = read_u64(&dir.join("memory.peak"));
    let stat = read_keyed(&dir.join("memory.stat"));
    for key in ["anon", "file", "kernel_stack", "sock", "shmem"] {
        if let Some(v) = get(&stat, key) {
            f.mem_stat.push((key, v));
        }
    }
    f.pids_current = read_u64(&dir.join("pids.current"));
    f.pids_limit = read_u64(&dir.join("pids.max"));
    if let Ok(text) = fs::read_to_string(dir.join("io.stat")) {
        f.io_readable = true;
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let Some(device) = parts.next() else { continue };
            let mut io = [0u64; 4];
            for kv in parts {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let slot = match k {
                    "rbytes" => 0,
                    "wbytes" => 1,
                    "rios" => 2,
                    "wios" => 3,
                    _ => continue,
                };
                io[slot] = v.parse().unwrap_or(0);
            }
            f.io.push((device.to_string(), io));
        }
    }
    f
}

fn v1_dir(root: &Path, names: &[&str], path: &str) -> Option<PathBuf> {
    names
        .iter()
        .map(|n| root.join(n).join(path))
        .find(|d| d.is_dir())
}

fn read_v1(root: &Path, path: &str) -> Figures {
    let mut f = Figures::default();
    if let Some(d) = v1_dir(root, &["cpuacct", "cpu,cpuacct", "cpuacct,cpu"], path) {
        f.cpu_usage_ns = read_u64(&d.join("cpuacct.usage"));
        f.cpu_user_ns = read_u64(&d.join("cpuacct.usage_user"));
        f.cpu_system_ns = read_u64(&d.join("cpuacct.usage_sys"));
        if f.cpu_user_ns.is_none() {
            // cpuacct.stat counts USER_HZ ticks, 100 a second on Linux.
            let stat = read_keyed(&d.join("cpuacct.stat"));
            f.cpu_user_ns = get(&stat, "user").map(|t| t * 10_000_000);
            f.cpu_system_ns = get(&stat, "system").map(|t| t * 10_000_000);
        }
    }
    if let Some(d) = v1_dir(root, &["cpu", "cpu,cpuacct", "cpuacct,cpu"], path) {
        let cpu = read_keyed(&d.join("cpu.stat"));
        f.nr_periods = get(&cpu, "nr_periods");
        f.nr_throttled = get(&cpu, "nr_throttled");
        f.throttled_ns = get(&cpu, "throttled_time");
    }
    if let Some(d) = v1_dir(root, &["memory"], path) {
        f.mem_usage = read_u64(&d.join("memory.usage_in_bytes"));
        f.mem_limit = read_u64(&d.join("memory.limit_in_bytes")).filter(|l| *l < V1_UNLIMITED);
        f.mem_peak = read_u64(&d.join("memory.max_usage_in_bytes"));
        let stat = read_keyed(&d.join("memory.stat"));
        for (key, v1) in [("anon", "rss"), ("file", "cache"), ("shmem", "shmem")] {
            if let Some(v) = get(&stat, &format!("total_{v1}")).or_else(|| get(&stat, v1)) {
                f.mem_stat.push((key, v));
            }
        }
    }
    if let Some(d) = v1_dir(root, &["pids"], path) {
        f.pids_current = read_u64(&d.join("pids.current"));
        f.pids_limit = read_u64(&d.join("pids.max"));
    }
    if let Some(d) = v1_dir(root, &["blkio"], path) {
        // The `_recursive` files (what the field names promise) include
        // child cgroups; older kernels have only the plain ones.
        let read = |name: &str| {
            fs::read_to_string(d.join(format!("{name}_recursive")))
                .or_else(|_| fs::read_to_string(d.join(name)))
        };
        let bytes = read("blkio.throttle.io_service_bytes");
        let ops = read("blkio.throttle.io_serviced");
        let mut devices: Vec<(String, [u64; 4])> = Vec::new();
        for (text, offset) in [(bytes, 0), (ops, 2)] {
            let Ok(text) = text else { continue };
            f.io_readable = true;
            for line in text.lines() {
                let parts: Vec<&str> = line.split_whitespace().collect();
                let [device, op, value] = parts[..] else {
                    continue;
                };
                let slot = match op {
                    "Read" => offset,
                    "Write" => offset + 1,
                    _ => continue,
                };
                let v = value.parse().unwrap_or(0);
                match devices.iter_mut().find(|(d, _)| d == device) {
                    Some((_, io)) => io[slot] = v,
                    None => {
                        let mut io = [0u64; 4];
                        io[slot] = v;
                        devices.push((device.to_string(), io));
                    }
                }
            }
        }
        f.io = devices;
    }
    f
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CgroupInput {
    pub enabled: bool,
    pub root: PathBuf,
    pub path: String,
}

impl Default for CgroupInput {
    fn default() -> Self {
        CgroupInput {
            enabled: true,
            root: "/sys/fs/cgroup".into(),
            path: String::new(),
        }
    }
}
