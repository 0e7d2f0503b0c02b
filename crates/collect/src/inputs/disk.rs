//! Usage of configured mount points (the PVCs), by statvfs.

use serde::Deserialize;
use std::path::PathBuf;

use std::path::Path;

use nix::sys::statvfs::statvfs;

use crate::line_protocol::Point;

pub fn gather(config: &DiskInput) -> (Vec<Point>, Vec<String>) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut points = Vec::new();
    let mut errors = Vec::new();
    for path in &config.paths {
        match statvfs(path.as_path()) {
            Ok(st) => {
                let frsize = st.fragment_size();
                let total = st.blocks() * frsize;
                let free = st.blocks_available() * frsize;
                let used = (st.blocks()).saturating_sub(st.blocks_free()) * frsize;
                let (device, fstype) = mount_of(&mounts, path);
                let mut p = Point::new("disk")
                    .tag("path", path.display().to_string())
                    .tag("device", device)
                    .tag("fstype", fstype)
                    .field("total", total)
                    .field("free", free)
                    .field("used", used)
                    .field("inodes_total", st.files())
                    .field("inodes_free", st.files_free())
                    .field("inodes_used", (st.files()).saturating_sub(st.files_free()));
                // As df: share of what non-root users could have.
                if used + free > 0 {
                    p = p.field("used_percent", used as f64 / (used + free) as f64 * 100.0);
                }
                points.push(p);
            }
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    (points, errors)
}

/// Device and filesystem type of the mount holding `path` (longest mount
/// point that is a prefix of it).
fn mount_of(mounts: &str, path: &Path) -> (String, String) {
    let mut best: Option<(usize, &str, &str)> = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [device, mount_point, fstype, ..] = f[..] else {
            continue;
        };
        let mount_point = mount_point.replace("\\040", " ");
        if path.starts_with(&mount_point) && best.is_none_or(|(len, _, _)| mount_point.len() >= len)
        {
            best = Some((mount_point.len(), device, fstype));
        }
    }
    best.map_or_else(
        || ("unknown".into(), "unknown".into()),
        |(_, d, t)| (d.to_string(), t.to_string()),
    )
}
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskInput {
    pub paths: Vec<PathBuf>,
}
