//! Prometheus text exposition format, as Telegraf's `prometheus` input
//! (metric_version 2) writes it: measurement `prometheus`, one field per
//! metric name, the labels as tags; samples with equal labels share a point.

use serde::Deserialize;
use std::path::PathBuf;

use std::collections::BTreeMap;

use crate::line_protocol::{FieldValue, Point};

/// Label pairs, sorted by name.
type Labels = Vec<(String, String)>;

pub fn parse(text: &str, url: &str) -> Vec<Point> {
    let mut by_labels: BTreeMap<Labels, Vec<(String, FieldValue)>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, labels, value)) = parse_sample(line) else {
            continue;
        };
        if !value.is_finite() {
            continue;
        }
        by_labels
            .entry(labels)
            .or_default()
            .push((name, FieldValue::Float(value)));
    }
    by_labels
        .into_iter()
        .map(|(labels, fields)| {
            let mut p = Point::new("prometheus").tag("url", url);
            p.tags.extend(labels);
            p.fields = fields;
            p
        })
        .collect()
}

/// `name{a="x",b="y"} value [timestamp]`
fn parse_sample(line: &str) -> Option<(String, Labels, f64)> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        loop {
            // Skip separators.
            while chars
                .peek()
                .is_some_and(|(_, c)| *c == ',' || c.is_whitespace())
            {
                chars.next();
            }
            let (start, c) = *chars.peek()?;
            if c == '}' {
                chars.next();
                rest = &r[start + 1..];
                break;
            }
            let eq = r[start..].find('=')? + start;
            let key = r[start..eq].trim().to_string();
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.push((key, value));
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    labels.sort();
    Some((name, labels, value))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusInput {
    pub urls: Vec<String>,
    pub ca_file: PathBuf,
    pub server_name: String,
}

crate::inputs::http::impl_http_input!(PrometheusInput, |input| {
    input.urls.iter().map(String::as_str).collect()
});

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn groups_samples_by_labels() {
        let text = "# HELP x y\n# TYPE h histogram\n\
            h_bucket{le=\"0.1\",path=\"/a\\\"b\"} 3\n\
            h_bucket{path=\"/a\\\"b\",le=\"+Inf\"} 5\n\
            h_sum 1.5\nh_count 5\nup 1 1700000000000\nbad{x=\"1\"} NaN\n";
        let points = parse(text, "u");
        assert_eq!(points.len(), 3, "{points:?}");
        let bare = points.iter().find(|p| p.tags.len() == 1).unwrap();
        assert_eq!(bare.fields.len(), 3);
        let le = points
            .iter()
            .find(|p| p.tags.contains(&("le".into(), "+Inf".into())))
            .unwrap();
        assert!(le.tags.contains(&("path".into(), "/a\"b".into())));
    }
}
