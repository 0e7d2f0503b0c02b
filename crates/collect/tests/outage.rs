//! collect rides out an InfluxDB outage of more than a minute: every
//! interval's points arrive afterwards, in order, each exactly once.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::{Collect, query, rows, try_query, wait_for};

const OUTAGE: Duration = Duration::from_secs(62);

/// InfluxDB's own count of points accepted over HTTP since it started.
fn points_written_ok(base: &str) -> u64 {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("{base}/debug/vars"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The section is keyed "httpd:<bind address>".
    let httpd = v
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.starts_with("httpd"))
        .map(|(_, s)| s.clone())
        .expect("an httpd section in /debug/vars");
    httpd["values"]["pointsWrittenOK"]
        .as_u64()
        .expect("pointsWrittenOK")
}

/// Timestamps (ns) of the `internal_collect` points stored so far.
fn stored_rounds(base: &str) -> Vec<i64> {
    let series = try_query(
        base,
        "metrics",
        "SELECT buffer_size FROM internal_collect",
        None,
    )
    .unwrap_or_default();
    rows(&series)
        .iter()
        .map(|r| r["time"].as_i64().unwrap())
        .collect()
}

/// A 2 s interval: a round is gathered every interval unless the machine
/// stalls collect for a whole interval, which a busy CI box can do for 1 s.
const INTERVAL_NS: i64 = 2_000_000_000;

/// The stored rounds form one unbroken run of interval steps.
fn assert_contiguous(rounds: &[i64], when: &str) {
    for w in rounds.windows(2) {
        assert_eq!(
            w[1] - w[0],
            INTERVAL_NS,
            "{when}: a hole or a misaligned round between {} and {}",
            w[0],
            w[1]
        );
    }
}

#[test]
fn outage_of_a_minute_loses_nothing_and_duplicates_nothing() {
    let mut influx = testbed::Influxdb::start().unwrap();
    let base = influx.url();
    let config = format!(
        r#"
interval = "2s"
service = "outage-test"
pod = "outage-test-0"
[output]
url = "{base}"
username = ""
batch_size = 7
retry_initial = "100ms"
retry_max = "1s"
[inputs.cgroup]
enabled = false
[inputs.net]
interfaces = ["lo"]
"#
    );
    let mut collect = Collect::start(&config);
    wait_for("three rounds stored", Duration::from_secs(20), || {
        (stored_rounds(&base).len() >= 3).then_some(())
    });

    // Freeze collect so no write is in flight while the first InfluxDB's
    // count of accepted points is read; then take InfluxDB away.
    collect.freeze();
    let before = points_written_ok(&base);
    influx.stop();
    collect.resume_through(OUTAGE);
    influx.restart().unwrap();

    // While the backlog drains, whatever is stored is always one unbroken
    // run from the first round: points arrive oldest first.
    let mut polls = 0;
    let drained = wait_for("the backlog to drain", Duration::from_secs(60), || {
        let rounds = stored_rounds(&base);
        assert_contiguous(&rounds, "while draining");
        polls += 1;
        let newest = *rounds.last()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        (now - newest < 2 * INTERVAL_NS + 1_000_000_000).then_some(rounds)
    });
    assert!(
        drained.len() as u64 >= OUTAGE.as_secs() / 2 + 3,
        "only {} rounds stored",
        drained.len()
    );

    let status = collect.stop();
    assert!(status.success(), "{status}\n{}", collect.log());
    let rounds = stored_rounds(&base);
    assert_contiguous(&rounds, "at the end");

    // Each round has its net point too, with the same timestamps.
    let net: BTreeSet<i64> = rows(&query(
        &base,
        "metrics",
        "SELECT bytes_recv FROM net WHERE interface = 'lo'",
        None,
    ))
    .iter()
    .map(|r| r["time"].as_i64().unwrap())
    .collect();
    let internal: BTreeSet<i64> = rounds.iter().copied().collect();
    assert_eq!(net, internal, "net and internal_collect rounds differ");

    // No point was sent twice: what both InfluxDB processes accepted adds
    // up to exactly the distinct points stored.
    let after = points_written_ok(&base);
    let distinct = (net.len() + internal.len()) as u64;
    assert_eq!(
        before + after,
        distinct,
        "accepted {before} + {after} points for {distinct} distinct ones ({polls} polls)"
    );

    // collect counted no drops and saw the write errors of the outage.
    let last = rows(&query(
        &base,
        "metrics",
        "SELECT last(metrics_dropped), last(write_errors) FROM internal_collect",
        None,
    ));
    assert_eq!(last[0]["last"].as_f64(), Some(0.0));
    assert!(last[0]["last_1"].as_f64().unwrap() >= 1.0);
}
