//! The encoder against InfluxDB itself: awkward tag and field values are
//! written, then read back with InfluxQL exactly as they were.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use collect::line_protocol::{Point, name_is_exact};
use proptest::prelude::*;
use support::{query, rows};

fn write(base: &str, body: &str) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "%{http_code}", "-XPOST"])
        .arg(format!("{base}/write?db=lp"))
        .arg("--data-binary")
        .arg("@-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(body.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.ends_with("204"), "write {body:?}: {answer}");
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(vec![',', '=', ' ', '"', '\\', '\'', 'a', 'é', '字', '😀', '\t']),
            1 => any::<char>().prop_filter("no NUL", |c| *c != '\0'),
        ],
        1..10,
    )
    .prop_map(|v| v.into_iter().collect())
}

#[test]
fn influxdb_reads_back_what_was_encoded() {
    let influx = testbed::Influxdb::start().unwrap();
    let base = influx.url();
    query(&base, "lp", "CREATE DATABASE lp", None);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(60));
    let ts = std::cell::Cell::new(1_000_000_000i64);
    runner
        .run(
            &(
                text().prop_filter("exact", |s| name_is_exact(s)),
                text(),
                any::<String>(),
            ),
            |(tag, field, any_string)| {
                ts.set(ts.get() + 1);
                let ts = ts.get();
                let mut p = Point::new("m, =x")
                    .tag("k", tag.clone())
                    .field("s", field.clone())
                    .field("u", any_string.clone())
                    .field("n", 1.25);
                p.timestamp = ts;
                write(&base, &p.encode().unwrap());
                let r = rows(&query(
                    &base,
                    "lp",
                    &format!("SELECT * FROM \"m, =x\" WHERE time = {ts}"),
                    None,
                ));
                prop_assert_eq!(r.len(), 1);
                prop_assert_eq!(r[0]["k"].as_str(), Some(tag.as_str()));
                prop_assert_eq!(r[0]["s"].as_str(), Some(field.as_str()));
                prop_assert_eq!(r[0]["u"].as_str(), Some(any_string.as_str()));
                prop_assert_eq!(r[0]["n"].as_f64(), Some(1.25));
                Ok(())
            },
        )
        .unwrap();
}
