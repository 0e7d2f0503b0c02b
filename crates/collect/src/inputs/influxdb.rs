//! InfluxDB's `/debug/vars` (expvar JSON): one `influxdb_<section>` point per
//! section, Go `memstats` as `influxdb_memstats`, and the shard count as
//! `influxdb`.

use serde::Deserialize;
use std::path::PathBuf;

use serde_json::Value;

use crate::line_protocol::{FieldValue, Point};

pub fn parse(json: &str, url: &str) -> Result<Vec<Point>, String> {
    let root: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let obj = root
        .as_object()
        .ok_or_else(|| "/debug/vars is not a JSON object".to_string())?;
    let mut points = Vec::new();
    let mut shards = 0u64;
    for (key, entry) in obj {
        if key == "memstats" {
            let mut p = Point::new("influxdb_memstats").tag("url", url);
            if let Some(m) = entry.as_object() {
                for (k, v) in m {
                    if let Some(v) = number(v) {
                        p = p.field(snake_case(k), v);
                    }
                }
            }
            points.push(p);
            continue;
        }
        let Some(name) = entry.get("name").and_then(Value::as_str) else {
            continue;
        };
        if name == "shard" {
            shards += 1;
        }
        let mut p = Point::new(format!("influxdb_{name}")).tag("url", url);
        if let Some(tags) = entry.get("tags").and_then(Value::as_object) {
            for (k, v) in tags {
                if let Some(s) = v.as_str() {
                    p = p.tag(k, s);
                }
            }
        }
        if let Some(values) = entry.get("values").and_then(Value::as_object) {
            for (k, v) in values {
                if let Some(v) = number(v) {
                    p = p.field(k, v);
                }
            }
        }
        points.push(p);
    }
    points.push(
        Point::new("influxdb")
            .tag("url", url)
            .field("n_shards", shards),
    );
    points.retain(Point::has_fields);
    Ok(points)
}

/// Every number as a float, as Telegraf's influxdb input writes them: JSON
/// does not say whether `0` is an integer or a float that happens to be
/// zero (Go's `GCCPUFraction` starts at 0), and a field must keep one type.
fn number(v: &Value) -> Option<FieldValue> {
    match v {
        Value::Number(n) => n.as_f64().map(FieldValue::Float),
        Value::Bool(b) => Some(FieldValue::Boolean(*b)),
        _ => None,
    }
}

/// `HeapInuse` -> `heap_inuse`, `GCCPUFraction` -> `gccpu_fraction`.
fn snake_case(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InfluxdbInput {
    pub url: String,
    pub username: String,
    pub password_file: PathBuf,
    pub password: String,
    pub ca_file: PathBuf,
    pub server_name: String,
}

impl Default for InfluxdbInput {
    fn default() -> Self {
        InfluxdbInput {
            url: "http://127.0.0.1:8086/debug/vars".into(),
            username: String::new(),
            password_file: PathBuf::new(),
            password: String::new(),
            ca_file: PathBuf::new(),
            server_name: String::new(),
        }
    }
}

crate::inputs::http::impl_http_input!(InfluxdbInput);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_cases_go_names() {
        assert_eq!(snake_case("HeapInuse"), "heap_inuse");
        assert_eq!(snake_case("NumGC"), "num_gc");
        assert_eq!(snake_case("PauseTotalNs"), "pause_total_ns");
        assert_eq!(snake_case("GCCPUFraction"), "gccpu_fraction");
    }
}
