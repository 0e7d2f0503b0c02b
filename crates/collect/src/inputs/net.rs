//! Network counters of the pod's network namespace, from `/proc/net/dev`.

use serde::Deserialize;
use std::path::PathBuf;

use crate::line_protocol::Point;

pub fn gather(config: &NetInput) -> std::io::Result<Vec<Point>> {
    let text = std::fs::read_to_string(&config.proc_net_dev)?;
    Ok(parse(&text)
        .into_iter()
        .filter(|p| {
            let name = p.tags.first().map_or("", |(_, v)| v.as_str());
            if config.interfaces.is_empty() {
                config.include_lo || name != "lo"
            } else {
                config.interfaces.iter().any(|i| i == name)
            }
        })
        .collect())
}

/// Parses `/proc/net/dev`: after two header lines, `iface: ` then 8
/// receive and 8 transmit counters.
pub fn parse(text: &str) -> Vec<Point> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            if v.len() < 16 {
                return None;
            }
            Some(
                Point::new("net")
                    .tag("interface", name.trim())
                    .field("bytes_recv", v[0])
                    .field("packets_recv", v[1])
                    .field("err_in", v[2])
                    .field("drop_in", v[3])
                    .field("bytes_sent", v[8])
                    .field("packets_sent", v[9])
                    .field("err_out", v[10])
                    .field("drop_out", v[11]),
            )
        })
        .collect()
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetInput {
    pub enabled: bool,
    pub proc_net_dev: PathBuf,
    pub interfaces: Vec<String>,
    pub include_lo: bool,
}

impl Default for NetInput {
    fn default() -> Self {
        NetInput {
            enabled: true,
            proc_net_dev: "/proc/net/dev".into(),
            interfaces: Vec::new(),
            include_lo: false,
        }
    }
}
