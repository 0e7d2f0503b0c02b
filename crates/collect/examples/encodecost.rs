//! Encode cost per point: collect's encoder against InfluxData's
//! `influxdb-line-protocol` builder, same points, same run. Prints one
//! `RESULT` line per encoder (best of five rounds of 200,000 points).
//! Run with `cargo run --release -p collect --example encodecost`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use collect::line_protocol::Point;
use influxdb_line_protocol::LineProtocolBuilder;

const POINTS: usize = 200_000;
const ROUNDS: usize = 5;

/// A point shaped like the cgroup input's: four tags, five numeric fields.
fn point(i: usize) -> Point {
    let mut p = Point::new("docker_container_cpu")
        .tag("container_name", format!("wordpress-{}", i % 7))
        .tag("host", "node-1")
        .tag("service", "wordpress")
        .tag("stack", "ft_services")
        .field("usage_total", (i as u64) * 1_000)
        .field("usage_system", (i as u64) * 300)
        .field("usage_user", (i as u64) * 700)
        .field("usage_percent", i as f64 / 3.0)
        .field("throttled", false);
    p.timestamp = 1_764_000_000_000_000_000 + i as i64;
    p
}

/// Best nanoseconds per point over the rounds; `encode` appends one line.
fn measure(name: &str, points: &[Point], mut encode: impl FnMut(&Point, &mut Vec<u8>)) {
    let mut buf = Vec::with_capacity(256 * points.len());
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        buf.clear();
        let start = Instant::now();
        for p in points {
            encode(black_box(p), &mut buf);
        }
        black_box(&buf);
        best = best.min(start.elapsed().as_nanos() as f64 / points.len() as f64);
    }
    println!(
        "RESULT encoder={name} ns_per_point={best:.0} bytes={}",
        buf.len()
    );
}

fn main() {
    let points: Vec<Point> = (0..POINTS).map(point).collect();
    // The agent encodes into one reused String, then copies it out.
    let mut line = String::new();
    measure("collect", &points, |p, buf| {
        line.clear();
        p.encode_into(&mut line);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
    });
    measure("influxdb-line-protocol", &points, |p, buf| {
        use collect::line_protocol::FieldValue as V;
        let b = LineProtocolBuilder::new_with(std::mem::take(buf)).measurement(&p.measurement);
        let b = p.tags.iter().fold(b, |b, (k, v)| b.tag(k, v));
        let mut fields = p.fields.iter();
        let (k, v) = fields.next().expect("points have fields");
        let mut b = match v {
            V::Float(f) => b.field(k, *f),
            V::Integer(i) => b.field(k, *i),
            V::Boolean(x) => b.field(k, *x),
            V::String(s) => b.field(k, s.as_str()),
        };
        for (k, v) in fields {
            b = match v {
                V::Float(f) => b.field(k, *f),
                V::Integer(i) => b.field(k, *i),
                V::Boolean(x) => b.field(k, *x),
                V::String(s) => b.field(k, s.as_str()),
            };
        }
        *buf = b.timestamp(p.timestamp).close_line().build();
    });
}
