//! collect when part of its world is missing, against a real InfluxDB: no
//! readable cgroup, and an InfluxDB outage longer than the buffer holds.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{Collect, allocator, query, rows, try_query, wait_for};

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Rows of `q` with their `time` (ns), sorted by time.
fn timed_rows(base: &str, q: &str) -> Vec<serde_json::Map<String, Value>> {
    rows(&try_query(base, "metrics", q, None).unwrap_or_default())
}

fn count(base: &str, measurement: &str) -> usize {
    timed_rows(base, &format!("SELECT * FROM \"{measurement}\"")).len()
}

#[test]
fn without_a_readable_cgroup_it_says_so_once_and_the_other_inputs_go_on() {
    let influx = testbed::Influxdb::start().unwrap();
    let base = influx.url();
    let missing = std::path::PathBuf::from(format!(
        "/nonexistent/collect-test-cgroup-{}",
        std::process::id()
    ));
    let marker = format!("collect-test-nocgroup-{}", std::process::id());
    let alloc = allocator(&marker, 1, None);
    let config = format!(
        r#"
interval = "1s"
service = "nocgroup-test"
pod = "nocgroup-test-0"
[output]
url = "{base}"
username = ""
retry_initial = "100ms"
retry_max = "500ms"
[inputs.cgroup]
root = "{root}"
[inputs.net]
interfaces = ["lo"]
[inputs.procstat]
programs = [{{ name = "sleeper", pattern = "{marker}" }}]
"#,
        root = missing.display()
    );
    let mut collect = Collect::start(&config);

    // Several rounds, each with its net and procstat points.
    wait_for(
        "four rounds of net and procstat",
        Duration::from_secs(30),
        || (count(&base, "net") >= 4 && count(&base, "procstat") >= 4).then_some(()),
    );
    let status = collect.stop();
    assert!(status.success(), "{status}\n{}", collect.log());

    let log = collect.log();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("no readable cgroup"))
        .collect();
    assert_eq!(said.len(), 1, "the missing cgroup said once:\n{log}");
    assert!(
        said[0].contains("WARN") && said[0].contains(&missing.display().to_string()),
        "the line names the level and the path: {}",
        said[0]
    );

    let measurements: Vec<String> = rows(&query(&base, "metrics", "SHOW MEASUREMENTS", None))
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !measurements
            .iter()
            .any(|m| m.starts_with("docker_container")),
        "{measurements:?}"
    );
    let procstat = timed_rows(
        &base,
        "SELECT pid, memory_rss FROM procstat WHERE process_name = 'sleeper' AND service = 'nocgroup-test'",
    );
    assert!(
        procstat
            .iter()
            .all(|r| r["pid"].as_f64() == Some(f64::from(alloc.id()))),
        "{procstat:?}"
    );
    let net = timed_rows(
        &base,
        "SELECT bytes_recv FROM net WHERE interface = 'lo' AND pod = 'nocgroup-test-0'",
    );
    assert!(net.len() >= 4, "{net:?}");
    // The missing cgroup is no input error.
    let internal = timed_rows(&base, "SELECT last(input_errors) FROM internal_collect");
    assert_eq!(internal[0]["last"].as_f64(), Some(0.0), "{}", log);
}

/// A 1 s interval with 2 points a round (net lo, internal_collect) into a
/// buffer of 8: the buffer holds the last 4 rounds.
const BUFFER: usize = 8;
const ROUND_POINTS: usize = 2;
const INTERVAL_NS: i64 = 1_000_000_000;
const OUTAGE: Duration = Duration::from_secs(10);

#[test]
fn a_full_buffer_drops_the_oldest_points_and_reports_how_many() {
    let mut influx = testbed::Influxdb::start().unwrap();
    let base = influx.url();
    let config = format!(
        r#"
interval = "1s"
service = "overflow-test"
pod = "overflow-test-0"
[output]
url = "{base}"
username = ""
batch_size = 3
buffer_limit = {BUFFER}
retry_initial = "100ms"
retry_max = "500ms"
[inputs.cgroup]
enabled = false
[inputs.net]
interfaces = ["lo"]
"#
    );
    let mut collect = Collect::start(&config);
    let rounds = |base: &str| -> Vec<i64> {
        timed_rows(base, "SELECT buffer_size FROM internal_collect")
            .iter()
            .map(|r| r["time"].as_i64().unwrap())
            .collect()
    };
    wait_for("three rounds stored", Duration::from_secs(20), || {
        (rounds(&base).len() >= 3).then_some(())
    });

    // Freeze collect so no write is in flight while InfluxDB goes away.
    let frozen = now_ns();
    collect.freeze();
    influx.stop();
    collect.resume_through(OUTAGE);
    influx.restart().unwrap();
    let restarted = now_ns();

    // Rounds after the restart arrive again; then stop (collect flushes).
    wait_for("rounds after the restart", Duration::from_secs(20), || {
        (rounds(&base).last()? > &(restarted + 2 * INTERVAL_NS)).then_some(())
    });
    let status = collect.stop();
    assert!(status.success(), "{status}\n{}", collect.log());

    let stored = rounds(&base);
    let last_before = *stored.iter().rfind(|t| **t < frozen).unwrap();
    let during: Vec<i64> = stored
        .iter()
        .copied()
        .filter(|t| (frozen..restarted).contains(t))
        .collect();
    // The newest rounds of the outage survived, at most what the buffer
    // holds (one more for a round stamped just before the restart and
    // pushed after it) ...
    assert!(
        !during.is_empty() && during.len() <= BUFFER / ROUND_POINTS + 1,
        "{} rounds of the outage stored: {during:?}",
        during.len()
    );
    // ... and the oldest ones went: a hole of several rounds right after
    // the last round stored before the outage.
    let hole = (during[0] - last_before) / INTERVAL_NS - 1;
    assert!(
        hole >= 3,
        "only {hole} rounds missing after {last_before}: {stored:?}"
    );
    assert!(
        restarted - during[during.len() - 1] <= 3 * INTERVAL_NS,
        "the newest outage round kept is {} s before the restart",
        (restarted - during[during.len() - 1]) / INTERVAL_NS
    );

    // The counter of dropped points is reported, and exact: every point
    // gathered is either stored or counted as dropped.
    let internal = timed_rows(
        &base,
        "SELECT metrics_gathered, metrics_dropped, buffer_limit FROM internal_collect",
    );
    let last = internal.last().unwrap();
    let gathered = last["metrics_gathered"].as_u64().unwrap();
    let dropped = last["metrics_dropped"].as_u64().unwrap();
    assert!(dropped > 0, "{last:?}");
    assert_eq!(last["buffer_limit"].as_u64(), Some(BUFFER as u64));
    let stored_points = (count(&base, "net") + count(&base, "internal_collect")) as u64;
    assert_eq!(
        stored_points + dropped,
        gathered,
        "{stored_points} stored + {dropped} dropped != {gathered} gathered"
    );
    // Nothing was dropped before the outage; the count only grows.
    let dropped_series: Vec<(i64, u64)> = internal
        .iter()
        .map(|r| {
            (
                r["time"].as_i64().unwrap(),
                r["metrics_dropped"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        dropped_series.iter().all(|(t, d)| *t >= frozen || *d == 0),
        "{dropped_series:?}"
    );
    assert!(dropped_series.windows(2).all(|w| w[0].1 <= w[1].1));
}
