//! collect against real servers: every input enabled, points read back from
//! a real InfluxDB with InfluxQL.

#![allow(clippy::unwrap_used)]

mod peers;
mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{
    Collect, TestCgroup, allocator, check_config, config_head, disk_dir, query, rows, try_query,
    wait_for, whole_disk_of, workload,
};

const MIB: f64 = 1024.0 * 1024.0;
/// The memory limit set on the test cgroup.
const MEMORY_LIMIT: u64 = 512 << 20;

fn last(influx: &str, measurement: &str, field: &str, filter: &str) -> Option<f64> {
    let q = format!(
        "SELECT last(\"{field}\") FROM \"{measurement}\" WHERE service = 'web-test' AND pod = 'web-test-0'{filter}"
    );
    rows(&query(influx, "metrics", &q, None))
        .first()
        .and_then(|r| r.get("last").and_then(Value::as_f64))
}

#[test]
fn every_input_reaches_influxdb_with_plausible_values() {
    let peers = peers::Peers::start();
    let (influx, db, web) = (&peers.influx, &peers.db, &peers.web);

    let cgroup = TestCgroup::create("inputs");
    let marker = format!("collect-test-alloc-{}", std::process::id());
    let alloc = allocator(&marker, 64, Some(&cgroup));
    cgroup.set_memory_limit(MEMORY_LIMIT);

    let config = format!(
        r#"{head}
[tags]
cluster = "test"
[inputs.cgroup]
root = "{cg_root}"
path = "{cg_name}"
[inputs.net]
include_lo = true
[inputs.disk]
paths = ["/", "{tmp}"]
[inputs.procstat]
programs = [{{ name = "allocator", pattern = "{marker}" }},
            {{ name = "nginx", pid_file = "{nginx_pid}" }},
            "mariadbd", "no-such-program"]
{inputs}"#,
        head = config_head(&influx.url(), "web-test"),
        cg_root = cgroup.root.display(),
        cg_name = cgroup.name,
        tmp = peers.dir().display(),
        nginx_pid = web.nginx_pid_file().display(),
        inputs = peers.inputs(),
    );
    let mut collect = Collect::start(&config);
    let url = influx.url();
    let u = url.as_str();

    // Every measurement arrives, tagged service/pod.
    for m in [
        "docker_container_cpu",
        "docker_container_mem",
        "docker_container_pids",
        "docker_container_blkio",
        "net",
        "disk",
        "procstat",
        "procstat_lookup",
        "nginx",
        "phpfpm",
        "mysql",
        "influxdb",
        "influxdb_httpd",
        "influxdb_memstats",
        "prometheus",
        "internal_collect",
    ] {
        wait_for(&format!("measurement {m}"), Duration::from_secs(30), || {
            let s = try_query(
                u,
                "metrics",
                &format!("SELECT * FROM \"{m}\" WHERE service = 'web-test' AND pod = 'web-test-0' AND cluster = 'test' LIMIT 1"),
                None,
            )
            .unwrap_or_default();
            (!s.is_empty()).then_some(())
        });
    }
    // No point lacks the tags: the tag values are exactly the configured ones.
    let services = rows(&query(
        u,
        "metrics",
        "SHOW TAG VALUES WITH KEY = \"service\"",
        None,
    ));
    assert!(
        services.iter().all(|r| r["value"] == "web-test"),
        "{services:?}"
    );
    let pods = rows(&query(
        u,
        "metrics",
        "SHOW TAG VALUES WITH KEY = \"pod\"",
        None,
    ));
    assert!(pods.iter().all(|r| r["value"] == "web-test-0"), "{pods:?}");

    // The container's memory holds the 64 MiB the allocator touched inside it.
    let mem = last(u, "docker_container_mem", "usage", "").unwrap();
    assert!(
        (60.0 * MIB..1024.0 * MIB).contains(&mem),
        "cgroup memory {mem}"
    );
    assert!(last(u, "docker_container_cpu", "usage_total", "").unwrap() > 0.0);
    // ... all of it anonymous, under the limit the test set.
    let anon = last(u, "docker_container_mem", "anon", "").unwrap();
    assert!((60.0 * MIB..1024.0 * MIB).contains(&anon), "anon {anon}");
    assert_eq!(
        last(u, "docker_container_mem", "limit", ""),
        Some(MEMORY_LIMIT as f64)
    );
    let pct = last(u, "docker_container_mem", "usage_percent", "").unwrap();
    assert!(
        (60.0 * MIB / MEMORY_LIMIT as f64 * 100.0..100.0).contains(&pct),
        "usage_percent {pct}"
    );
    container_workload_shows(u, &cgroup);

    // procstat: the allocator's RSS, nginx master + worker from the pid file.
    let f = " AND process_name = 'allocator'";
    let rss = last(u, "procstat", "memory_rss", f).unwrap();
    assert!(
        (64.0 * MIB..512.0 * MIB).contains(&rss),
        "allocator RSS {rss}"
    );
    assert_eq!(last(u, "procstat", "pid_count", f), Some(1.0));
    assert_eq!(
        last(u, "procstat", "pid", f),
        Some(f64::from(alloc.id())),
        "pid of the allocator"
    );
    assert!(last(u, "procstat", "num_threads", f).unwrap() >= 1.0);
    let nginx_procs = last(u, "procstat", "pid_count", " AND process_name = 'nginx'").unwrap();
    assert!(nginx_procs >= 2.0, "nginx master and worker: {nginx_procs}");
    assert_eq!(
        last(
            u,
            "procstat_lookup",
            "running",
            " AND process_name = 'mariadbd'"
        ),
        Some(1.0)
    );
    assert_eq!(
        last(
            u,
            "procstat_lookup",
            "running",
            " AND process_name = 'no-such-program'"
        ),
        Some(0.0)
    );

    // nginx: N requests raise the request counter by N (plus collect's own
    // polls of stub_status).
    let before = last(u, "nginx", "requests", "").unwrap();
    let n = 25;
    let urls: Vec<String> = (0..n).map(|i| web.url(&format!("/?r={i}"))).collect();
    let ok = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "10"])
        .args(&urls)
        .status()
        .unwrap();
    assert!(ok.success());
    let after = wait_for("nginx requests to grow", Duration::from_secs(15), || {
        last(u, "nginx", "requests", "").filter(|r| *r >= before + f64::from(n))
    });
    assert!(
        after <= before + f64::from(n) + 40.0,
        "requests {before} -> {after}"
    );

    // mysql: 30 statements raise Questions by at least 30.
    let q0 = last(u, "mysql", "questions", "").unwrap();
    db.sql(&"SELECT 1;".repeat(30)).unwrap();
    wait_for("mysql questions to grow", Duration::from_secs(15), || {
        last(u, "mysql", "questions", "").filter(|q| *q >= q0 + 30.0)
    });
    assert!(last(u, "mysql", "threads_connected", "").unwrap() >= 1.0);

    // php-fpm, InfluxDB, Prometheus, net, disk, internal.
    assert!(last(u, "phpfpm", "accepted_conn", " AND pool = 'status'").unwrap() >= 1.0);
    assert_eq!(last(u, "phpfpm", "total_processes", "").unwrap(), 2.0);
    assert!(last(u, "influxdb_httpd", "pointsWrittenOK", "").unwrap() > 0.0);
    assert!(last(u, "influxdb_memstats", "heap_inuse", "").unwrap() > 0.0);
    assert_eq!(
        last(u, "prometheus", "test_requests_total", " AND code = '200'"),
        Some(7.0)
    );
    assert_eq!(last(u, "prometheus", "test_up", ""), Some(1.0));
    assert!(last(u, "net", "bytes_recv", " AND interface = 'lo'").unwrap() > 0.0);
    assert!(last(u, "disk", "total", " AND path = '/'").unwrap() > 0.0);
    let used_pct = last(u, "disk", "used_percent", " AND path = '/'").unwrap();
    assert!((0.0..=100.0).contains(&used_pct));
    assert!(last(u, "internal_collect", "metrics_written", "").unwrap() > 0.0);
    assert_eq!(
        last(u, "internal_collect", "metrics_dropped", ""),
        Some(0.0),
        "{}",
        collect.log()
    );

    let status = collect.stop();
    assert!(status.success(), "{status}\n{}", collect.log());
    drop(alloc);
}

/// Starts a workload in the test cgroup (1 process already there: the
/// allocator) and waits for its block writes, file cache, processes and CPU
/// throttling to show in the container's figures.
fn container_workload_shows(u: &str, cgroup: &TestCgroup) {
    const DIRECT_MIB: usize = 16;
    const CACHED_MIB: usize = 32;
    let total = " AND device = 'total'";
    let write_field = "io_service_bytes_recursive_write";
    let written0 = last(u, "docker_container_blkio", write_field, total).unwrap();
    let ops0 = last(
        u,
        "docker_container_blkio",
        "io_serviced_recursive_write",
        total,
    )
    .unwrap();
    let file0 = last(u, "docker_container_mem", "file", "").unwrap();
    let throttled0 = last(
        u,
        "docker_container_cpu",
        "throttling_throttled_periods",
        "",
    )
    .unwrap();
    assert_eq!(
        last(u, "docker_container_pids", "current", ""),
        Some(1.0),
        "only the allocator in the cgroup yet"
    );

    let disk = disk_dir();
    cgroup.account_io_on(disk.path());
    // 20 ms of CPU per 100 ms period: 0.1 s of CPU takes 5 periods or more,
    // each one throttled.
    cgroup.set_cpu_quota(20_000);
    let work = workload(cgroup, disk.path(), DIRECT_MIB, CACHED_MIB, 2);

    // Block accounting is coarse (merged or split requests, metadata): at
    // least half of what went to the disk with O_DIRECT.
    let at_least = written0 + DIRECT_MIB as f64 * MIB / 2.0;
    let written = wait_for(
        "the direct writes in blkio",
        Duration::from_secs(20),
        || last(u, "docker_container_blkio", write_field, total).filter(|w| *w >= at_least),
    );
    // At most a few times all it wrote (v2 also charges the page cache's
    // writeback to the cgroup).
    assert!(
        written < written0 + 4.0 * (DIRECT_MIB + CACHED_MIB) as f64 * MIB,
        "blkio write {written0} -> {written}"
    );
    let (major, minor) = whole_disk_of(disk.path());
    let device = format!(" AND device = '{major}:{minor}'");
    let on_disk = last(u, "docker_container_blkio", write_field, &device).unwrap();
    assert!(
        on_disk >= DIRECT_MIB as f64 * MIB / 2.0,
        "{major}:{minor} write {on_disk}"
    );
    assert!(
        last(
            u,
            "docker_container_blkio",
            "io_serviced_recursive_write",
            total
        )
        .unwrap()
            > ops0
    );
    assert!(
        last(
            u,
            "docker_container_blkio",
            "io_service_bytes_recursive_read",
            total
        )
        .is_some()
    );

    // The page cache of the buffered file is charged to the container.
    wait_for("the cached file in memory", Duration::from_secs(20), || {
        last(u, "docker_container_mem", "file", "")
            .filter(|f| *f >= file0 + CACHED_MIB as f64 * MIB / 2.0)
    });
    // Allocator, the workload and its 2 sleepers.
    wait_for("4 processes in pids", Duration::from_secs(20), || {
        last(u, "docker_container_pids", "current", "").filter(|p| *p >= 4.0)
    });
    let throttled = wait_for("throttled CPU periods", Duration::from_secs(20), || {
        last(
            u,
            "docker_container_cpu",
            "throttling_throttled_periods",
            "",
        )
        .filter(|t| *t > throttled0)
    });
    let periods = last(u, "docker_container_cpu", "throttling_periods", "").unwrap();
    assert!(
        periods >= throttled,
        "{periods} periods, {throttled} throttled"
    );
    let throttled_ns = last(u, "docker_container_cpu", "throttling_throttled_time", "").unwrap();
    assert!(throttled_ns > 0.0, "throttled_time {throttled_ns}");
    drop(work);
}

#[test]
fn check_config_names_the_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "interval = \"10s\"\n[inputs.nginx]\nurl = \"http://127.0.0.1:8080/nginx_status\"\n",
    )
    .unwrap();
    let out = check_config(&good);
    assert!(out.status.success(), "{out:?}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[output]\nretry_initial = \"soon\"\n").unwrap();
    let out = check_config(&bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retry_initial"), "{err}");
}
