//! php-fpm status page, plain format (`pool: www`, `accepted conn: 5`, ...).

use crate::line_protocol::Point;

/// Fields as Telegraf names them: the status keys with `_` for spaces.
const FIELDS: &[&str] = &[
    "start since",
    "accepted conn",
    "listen queue",
    "max listen queue",
    "listen queue len",
    "idle processes",
    "active processes",
    "total processes",
    "max active processes",
    "max children reached",
    "slow requests",
];

pub fn parse(text: &str) -> Option<Point> {
    let mut pool = None;
    let mut fields = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k == "pool" {
            pool = Some(v.to_string());
        } else if FIELDS.contains(&k)
            && let Ok(n) = v.parse::<u64>()
        {
            fields.push((k.replace(' ', "_"), n));
        }
    }
    if fields.is_empty() {
        return None;
    }
    let mut p = Point::new("phpfpm").tag("pool", pool.unwrap_or_default());
    for (k, v) in fields {
        p = p.field(k, v);
    }
    Some(p)
}
crate::inputs::http::status_page_input!(
    /// `[inputs.phpfpm]`.
    PhpfpmInput,
    "http://127.0.0.1:8080/fpm-status"
);
