//! The inputs: each turns one source into points, named as Telegraf's
//! input of the same kind does (see the crate doc for the table).

pub mod cgroup;
pub mod disk;
pub mod http;
pub mod influxdb;
pub mod mysql;
pub mod net;
pub mod nginx;
pub mod phpfpm;
pub mod procstat;
pub mod prometheus;

use std::collections::HashSet;
use std::time::Duration;

use crate::config::Config;
use crate::line_protocol::Point;
use http::{Endpoint, HttpInput, Tls, fetch, http_client};

/// Every configured input, with the state some keep between rounds.
#[derive(Debug)]
pub struct Inputs {
    config: Config,
    nginx: Option<Endpoint>,
    phpfpm: Option<Endpoint>,
    influxdb: Option<Endpoint>,
    prometheus: Vec<Endpoint>,
    cgroup: Option<cgroup::Cgroup>,
    procstat: Option<procstat::Procstat>,
    mysql: Option<mysql::Mysql>,
    /// Inputs currently failing, so each failure is logged once.
    failing: HashSet<String>,
}

/// One round's result.
#[derive(Debug, Default)]
pub struct Round {
    pub points: Vec<Point>,
    pub errors: u64,
}

impl Inputs {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let i = &config.inputs;
        let timeout = config.interval.min(Duration::from_secs(5));
        let shared = http_client(timeout).build()?;
        let endpoint = |url: &str, tls: Tls<'_>, input: &str| {
            Endpoint::new(&shared, timeout, url, tls)
                .map_err(|e| anyhow::anyhow!("inputs.{input}: {e}"))
        };
        Ok(Inputs {
            config: config.clone(),
            nginx: i
                .nginx
                .as_ref()
                .map(|n| endpoint(&n.url, n.tls(), "nginx"))
                .transpose()?,
            phpfpm: i
                .phpfpm
                .as_ref()
                .map(|n| endpoint(&n.url, n.tls(), "phpfpm"))
                .transpose()?,
            influxdb: i
                .influxdb
                .as_ref()
                .map(|n| endpoint(&n.url, n.tls(), "influxdb"))
                .transpose()?,
            prometheus: i
                .prometheus
                .iter()
                .flat_map(|p| p.urls.iter().map(|u| endpoint(u, p.tls(), "prometheus")))
                .collect::<anyhow::Result<_>>()?,
            cgroup: i.cgroup.enabled.then(|| cgroup::Cgroup::new(&i.cgroup)),
            procstat: i
                .procstat
                .as_ref()
                .filter(|p| !p.programs.is_empty())
                .map(|p| procstat::Procstat::new(&p.programs)),
            mysql: i.mysql.clone().map(mysql::Mysql::new),
            failing: HashSet::new(),
        })
    }

    pub async fn gather(&mut self) -> Round {
        let mut results: Vec<(String, Result<Vec<Point>, String>)> = Vec::new();
        let inputs = &self.config.inputs;
        if let Some(c) = &mut self.cgroup {
            results.push(("cgroup".into(), Ok(c.gather())));
        }
        if inputs.net.enabled {
            results.push((
                "net".into(),
                net::gather(&inputs.net)
                    .map_err(|e| format!("{}: {e}", inputs.net.proc_net_dev.display())),
            ));
        }
        if let Some(d) = &inputs.disk {
            let (points, errors) = disk::gather(d);
            results.push((
                "disk".into(),
                if errors.is_empty() {
                    Ok(points)
                } else {
                    Err(errors.join("; "))
                },
            ));
        }
        if let Some(p) = &mut self.procstat {
            results.push(("procstat".into(), Ok(p.gather())));
        }

        let http_timeout = self.config.interval.min(Duration::from_secs(5));
        let nginx = async {
            match &self.nginx {
                Some(i) => Some(
                    fetch(i, None)
                        .await
                        .and_then(|t| {
                            nginx::parse(&t).ok_or_else(|| "not a stub_status page".to_string())
                        })
                        .map(|p| {
                            let (server, port) = host_port(&i.url);
                            vec![p.tag("server", server).tag("port", port)]
                        }),
                ),
                None => None,
            }
        };
        let phpfpm = async {
            match &self.phpfpm {
                Some(i) => Some(fetch(i, None).await.and_then(|t| {
                    phpfpm::parse(&t)
                        .map(|p| vec![p.tag("url", &i.url)])
                        .ok_or_else(|| "not a php-fpm status page".to_string())
                })),
                None => None,
            }
        };
        let influx = async {
            match (&self.influxdb, &inputs.influxdb) {
                (Some(e), Some(i)) => Some(
                    fetch(e, Some(i))
                        .await
                        .and_then(|t| influxdb::parse(&t, &i.url)),
                ),
                _ => None,
            }
        };
        let prom = async {
            let mut out = Vec::new();
            for e in &self.prometheus {
                let url = &e.url;
                let r = fetch(e, None).await.map(|t| prometheus::parse(&t, url));
                out.push((format!("prometheus {url}"), r));
            }
            out
        };
        let mysql = async {
            match &mut self.mysql {
                // A server that accepts but never answers must not stall
                // the round.
                Some(m) => Some(
                    tokio::time::timeout(http_timeout, m.gather())
                        .await
                        .unwrap_or_else(|_| Err(format!("no answer within {http_timeout:?}"))),
                ),
                None => None,
            }
        };
        let (nginx, phpfpm, influx, prom, mysql) = tokio::join!(nginx, phpfpm, influx, prom, mysql);
        for (name, r) in [
            ("nginx", nginx),
            ("phpfpm", phpfpm),
            ("influxdb", influx),
            ("mysql", mysql),
        ] {
            if let Some(r) = r {
                results.push((name.into(), r));
            }
        }
        results.extend(prom);

        let mut round = Round::default();
        for (name, r) in results {
            match r {
                Ok(points) => {
                    if self.failing.remove(&name) {
                        tracing::info!(input = %name, "input works again");
                    }
                    round.points.extend(points);
                }
                Err(e) => {
                    round.errors += 1;
                    if self.failing.insert(name.clone()) {
                        tracing::warn!(input = %name, error = %e, "input failed; retrying every interval");
                    }
                }
            }
        }
        round
    }
}

/// Telegraf's `server` and `port` tags of the nginx input.
fn host_port(url: &str) -> (String, String) {
    match reqwest::Url::parse(url) {
        Ok(u) => (
            u.host_str().unwrap_or_default().to_string(),
            u.port_or_known_default()
                .map(|p| p.to_string())
                .unwrap_or_default(),
        ),
        Err(_) => (String::new(), String::new()),
    }
}
