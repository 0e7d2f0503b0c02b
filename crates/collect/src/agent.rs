//! The gather loop: every interval (aligned to the wall clock) it runs the
//! inputs, stamps their points with the round's time and the common tags,
//! encodes them into the buffer and wakes the writer.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::config::Config;
use crate::inputs::Inputs;
use crate::line_protocol::Point;
use crate::output::{FLUSH_DEADLINE, Shared, Writer};

/// Runs until `stop` turns true, then flushes the buffer for at most
/// [`FLUSH_DEADLINE`].
pub async fn run(config: Config, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let writer = Writer::new(config.output.clone())?;
    let mut inputs = Inputs::new(&config)?;
    let common = common_tags(&config);
    let shared = Shared::new(config.buffer_limit(100));
    let writer_task = tokio::spawn(writer.run(shared.clone(), stop.clone()));
    let interval_ns = i64::try_from(config.interval.as_nanos()).unwrap_or(i64::MAX);
    tracing::info!(
        interval = ?config.interval,
        url = %config.output.url,
        database = %config.output.database,
        "collect started"
    );
    let mut last_round = None;
    loop {
        let wait = until_next_round(interval_ns);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
        let now = now_ns();
        let round_ts = now - now.rem_euclid(interval_ns);
        if last_round == Some(round_ts) {
            // Woke a hair early: this round was already gathered.
            continue;
        }
        last_round = Some(round_ts);
        let started = Instant::now();
        let round = inputs.gather().await;
        let gather_time = started.elapsed();
        push_round(
            &shared,
            &config,
            &common,
            round.points,
            round.errors,
            gather_time,
            round_ts,
        );
        shared.notify.notify_one();
    }
    match tokio::time::timeout(FLUSH_DEADLINE, writer_task).await {
        Ok(_) => {}
        Err(_) => {
            let left = shared.buffer().len();
            tracing::warn!(points = left, "stopping with points InfluxDB has not taken");
        }
    }
    Ok(())
}

/// `service` and `pod` (from the config, else the environment's `SERVICE` /
/// `POD_NAME`, else the host name for `pod`) and the config's `[tags]`.
pub fn common_tags(config: &Config) -> Vec<(String, String)> {
    let from_env = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    let service = Some(config.service.clone())
        .filter(|s| !s.is_empty())
        .or_else(|| from_env("SERVICE"))
        .unwrap_or_default();
    let pod = Some(config.pod.clone())
        .filter(|s| !s.is_empty())
        .or_else(|| from_env("POD_NAME"))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_default();
    let mut tags = vec![("service".to_string(), service), ("pod".to_string(), pod)];
    for (k, v) in &config.tags {
        if k != "service" && k != "pod" {
            tags.push((k.clone(), v.clone()));
        }
    }
    tags
}

fn push_round(
    shared: &Arc<Shared>,
    config: &Config,
    common: &[(String, String)],
    points: Vec<Point>,
    input_errors: u64,
    gather_time: Duration,
    ts: i64,
) {
    let mut line = String::new();
    let count = points.len() + usize::from(config.inputs.internal.enabled);
    let mut buffer = shared.buffer();
    buffer.grow_limit(config.buffer_limit(count));
    for mut p in points {
        stamp(&mut p, common, ts);
        line.clear();
        if p.encode_into(&mut line) {
            buffer.push(line.clone());
        }
    }
    buffer.counters.input_errors += input_errors;
    if config.inputs.internal.enabled {
        let c = buffer.counters;
        let mut p = Point::new("internal_collect")
            .field(
                "gather_time_ns",
                u64::try_from(gather_time.as_nanos()).unwrap_or(u64::MAX),
            )
            // This point itself counts as gathered.
            .field("metrics_gathered", c.gathered + 1)
            .field("input_errors", c.input_errors)
            .field("buffer_size", buffer.len() as u64 + 1)
            .field("buffer_limit", buffer.limit() as u64)
            .field("metrics_written", c.written)
            .field("metrics_dropped", c.dropped)
            .field("write_errors", c.write_errors);
        stamp(&mut p, common, ts);
        if let Some(l) = p.encode() {
            buffer.push(l);
        }
    }
}

fn stamp(p: &mut Point, common: &[(String, String)], ts: i64) {
    // An input's own tag of the same name wins (none uses these names).
    for (k, v) in common {
        if !p.tags.iter().any(|(pk, _)| pk == k) {
            p.tags.push((k.clone(), v.clone()));
        }
    }
    p.timestamp = ts;
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Time to the next multiple of the interval on the wall clock.
fn until_next_round(interval_ns: i64) -> Duration {
    let now = now_ns();
    let next = now - now.rem_euclid(interval_ns) + interval_ns;
    Duration::from_nanos(u64::try_from(next - now).unwrap_or(0))
}
