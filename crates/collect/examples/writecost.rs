//! Cost per point of collect's write path (encode, buffer, gzip, HTTP to a
//! real InfluxDB, acknowledge) for 100,000 points, against a plain Python
//! writer doing the same (format lines, gzip, POST) in the same run.
//! Prints one `RESULT` line per writer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Instant;

use collect::line_protocol::Point;
use collect::output::{Shared, Writer};

const POINTS: usize = 100_000;
const BATCH: usize = 5000;

/// utime + stime of this process, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the ')'.
    (f[11] + f[12]) as f64 / 100.0
}

fn count(base: &str, db: &str) -> u64 {
    let out = Command::new("curl")
        .args(["-sS", "-G"])
        .arg(format!("{base}/query"))
        .arg("--data-urlencode")
        .arg(format!("db={db}"))
        .arg("--data-urlencode")
        .arg("q=SELECT count(usage_total) FROM docker_container_cpu")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0)
}

fn main() {
    let influx = testbed::Influxdb::start().expect("start InfluxDB");
    let base = influx.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // collect's path: build, encode and buffer the points, then let the
    // writer drain the buffer to InfluxDB.
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let config: collect::Config = toml::from_str(&format!(
        "[output]\nurl = \"{base}\"\ndatabase = \"bench_collect\"\nusername = \"\"\nbatch_size = {BATCH}\n"
    ))
    .unwrap();
    let shared = Shared::new(POINTS);
    {
        let mut buffer = shared.buffer();
        let mut line = String::new();
        for i in 0..POINTS {
            let mut p = Point::new("docker_container_cpu")
                .tag("cpu", "cpu-total")
                .tag("pod", "bench-0")
                .tag("service", "bench")
                .field("usage_total", (i as u64) * 1_000_000)
                .field("usage_percent", 0.125 + i as f64 / 1e6)
                .field("throttling_periods", i as u64);
            p.timestamp = 1_700_000_000_000_000_000 + i as i64 * 1_000_000_000;
            line.clear();
            p.encode_into(&mut line);
            buffer.push(line.clone());
        }
    }
    let encode_cpu = cpu_seconds() - cpu0;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(true);
    let writer = Writer::new(config.output).unwrap();
    rt.block_on(writer.run(shared.clone(), stop_rx));
    drop(stop_tx);
    let collect_wall = t0.elapsed().as_secs_f64();
    let collect_cpu = cpu_seconds() - cpu0;
    assert!(shared.buffer().is_empty(), "the writer left points behind");
    let stored = count(&base, "bench_collect");
    assert_eq!(stored, POINTS as u64, "collect: points stored");

    // The peer: the same points from Python's standard library.
    let script = format!(
        r#"
import gzip, json, time, urllib.request, urllib.parse
base = "{base}"
urllib.request.urlopen(base + "/query", urllib.parse.urlencode({{"q": "CREATE DATABASE bench_python"}}).encode()).read()
c0, t0 = time.process_time(), time.perf_counter()
lines = []
for i in range({POINTS}):
    lines.append("docker_container_cpu,cpu=cpu-total,pod=bench-0,service=bench usage_total=%di,usage_percent=%r,throttling_periods=%di %d"
                 % (i * 1000000, 0.125 + i / 1e6, i, 1700000000000000000 + i * 1000000000))
for s in range(0, len(lines), {BATCH}):
    body = gzip.compress(("\n".join(lines[s:s + {BATCH}]) + "\n").encode(), compresslevel=1)
    req = urllib.request.Request(base + "/write?db=bench_python&precision=ns", data=body,
                                 headers={{"Content-Encoding": "gzip"}})
    assert urllib.request.urlopen(req).status == 204
print(json.dumps({{"cpu": time.process_time() - c0, "wall": time.perf_counter() - t0}}))
"#
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (py_cpu, py_wall) = (py["cpu"].as_f64().unwrap(), py["wall"].as_f64().unwrap());
    assert_eq!(
        count(&base, "bench_python"),
        POINTS as u64,
        "python: points stored"
    );

    let per = |s: f64| s / POINTS as f64 * 1e9;
    println!(
        "RESULT collect points={POINTS} cpu_ns_per_point={:.0} wall_ns_per_point={:.0}",
        per(collect_cpu),
        per(collect_wall)
    );
    println!(
        "RESULT collect-phases encode_cpu_ns_per_point={:.0} write_cpu_ns_per_point={:.0}",
        per(encode_cpu),
        per(collect_cpu - encode_cpu)
    );
    println!(
        "RESULT python points={POINTS} cpu_ns_per_point={:.0} wall_ns_per_point={:.0}",
        per(py_cpu),
        per(py_wall)
    );
    println!(
        "RESULT ratio cpu_python_over_collect={:.1} wall_python_over_collect={:.1}",
        py_cpu / collect_cpu.max(0.01),
        py_wall / collect_wall
    );
}
