//! collect against real servers: every input enabled, points read back from
//! a real InfluxDB with InfluxQL.

#![allow(clippy::unwrap_used)]

mod peers;
mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{Collect, TestCgroup, allocator, query, rows, try_query, wait_for};

const MIB: f64 = 1024.0 * 1024.0;

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

    let config = format!(
        r#"
interval = "1s"
service = "web-test"
pod = "web-test-0"
[tags]
cluster = "test"
[output]
url = "{influx}"
username = ""
retry_initial = "200ms"
retry_max = "1s"
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
        influx = influx.url(),
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

#[test]
fn check_config_names_the_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "interval = \"10s\"\n[inputs.nginx]\nurl = \"http://127.0.0.1:8080/nginx_status\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_collect"))
        .arg("--check-config")
        .arg("--config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[output]\nretry_initial = \"soon\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_collect"))
        .arg("--check-config")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retry_initial"), "{err}");
}
