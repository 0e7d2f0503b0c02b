//! The TOML config, `/etc/collect.toml` by default.
//!
//! Every key is optional and has the default shown; inputs other than
//! `cgroup`, `net` and `internal` run only when their section is present.
//! Durations are strings with a unit: `"500ms"`, `"10s"`, `"5m"`, `"1h"`
//! ([`daemon::duration`]). A `password_file` is read under the workspace's
//! secret rule ([`daemon::secret`]): one trailing line end dropped, an empty
//! file is an error naming it.
//!
//! ```toml
//! interval = "10s"          # gather every interval, aligned to the wall clock
//! service = ""              # tag `service` on every point; "" = $SERVICE from the environment
//! pod = ""                  # tag `pod` on every point; "" = $POD_NAME, else the host name
//!
//! [tags]                    # extra tags on every point (none by default)
//! # zone = "a"
//!
//! [output]                  # InfluxDB 1.x HTTP API
//! url = "http://influxdb:8086"
//! database = "metrics"
//! username = "collect"      # "" = no authentication
//! password_file = "/run/private/collect/influxdb-password"  # read at start, re-read after a 401
//! password = ""             # used only when password_file is ""
//! create_database = true    # CREATE DATABASE at start; refused (403) is fine
//! timeout = "10s"           # per request
//! batch_size = 5000         # points per write request
//! buffer_limit = 0          # points held while InfluxDB is away; 0 = enough for buffer_duration
//! buffer_duration = "15m"   # with buffer_limit = 0: size the buffer for this long an outage
//! retry_initial = "1s"      # first back-off after a failed write, doubled up to retry_max
//! retry_max = "30s"
//!
//! [inputs.cgroup]           # the container's own cgroup (v2, else v1)
//! enabled = true
//! root = "/sys/fs/cgroup"   # v2: the unified mount; v1: the directory holding memory/, cpuacct/, ...
//! path = ""                 # cgroup below root ("" = root itself, the container's own under a cgroup namespace)
//!
//! [inputs.net]              # /proc/net/dev of the pod's network namespace
//! enabled = true
//! proc_net_dev = "/proc/net/dev"
//! interfaces = []           # [] = every interface but lo
//! include_lo = false
//!
//! [inputs.disk]             # statvfs of mount points (the PVCs)
//! paths = []
//!
//! [inputs.procstat]         # supervised programs, one `procstat` point each
//! # A bare name matches processes whose name (comm) or executable file
//! # name equals it; a table may give a pid_file (that process and its
//! # descendants) or a pattern (substring of the command line) instead.
//! programs = []             # e.g. ["nginx", "sshd", { name = "php-fpm", pattern = "php-fpm" }]
//!
//! [inputs.nginx]
//! url = "http://127.0.0.1:8080/nginx_status"
//! ca_file = ""              # https: see "HTTPS" below (nginx, phpfpm, influxdb, prometheus)
//! server_name = ""
//!
//! [inputs.phpfpm]
//! url = "http://127.0.0.1:8080/fpm-status"
//!
//! [inputs.mysql]
//! host = "127.0.0.1"
//! port = 3306
//! socket = ""               # a unix socket path instead of host/port
//! user = "collect"
//! password_file = "/run/private/collect/mysql-password"
//! password = ""
//!
//! [inputs.influxdb]         # InfluxDB's /debug/vars
//! url = "http://127.0.0.1:8086/debug/vars"
//! username = ""             # "" = no authentication
//! password_file = ""
//! password = ""
//!
//! [inputs.prometheus]       # Prometheus text endpoints
//! urls = []                 # e.g. ["http://127.0.0.1:9902/metrics"]
//! ca_file = ""
//! server_name = ""
//!
//! [inputs.internal]         # the `internal_collect` point
//! enabled = true
//! ```
//!
//! HTTPS: every HTTP input (`nginx`, `phpfpm`, `influxdb`, `prometheus`)
//! takes two optional keys for its `https://` URLs.
//!
//! - `ca_file`: a PEM bundle of CA certificates. When set, only these CAs
//!   are trusted for that input (the built-in roots are not): the
//!   endpoints are the pod's own, signed by the cluster's CA. "" = the
//!   built-in (Mozilla) roots. Read at start; a missing file or one
//!   holding no certificate stops collect with an error naming the key.
//! - `server_name`: the name the certificate is checked against, when the
//!   URL's host is an IP address the certificate does not name (loopback).
//!   collect then connects to the URL's address and port but verifies, and
//!   sends SNI and `Host:` for, this name. The URLs' hosts must be IP
//!   addresses. "" = the URL's host. The `url` tag stays the configured URL.
//!
//! E.g. Grafana's own metrics, its certificate naming the Service:
//!
//! ```toml
//! [inputs.prometheus]
//! urls = ["https://127.0.0.1:3000/metrics"]
//! ca_file = "/run/secrets/ft-tls/ca.crt"
//! server_name = "grafana"
//! ```

//!
//! A pod's config only names what differs, e.g. the wordpress image:
//!
//! ```toml
//! [inputs.procstat]
//! programs = ["nginx", { name = "php-fpm", pattern = "php-fpm" }]
//! [inputs.nginx]
//! url = "http://127.0.0.1:8080/nginx_status"
//! [inputs.phpfpm]
//! url = "http://127.0.0.1:8080/fpm-status"
//! ```
//!
//! (`service` and `pod` then come from `SERVICE` and `POD_NAME`, the
//! InfluxDB password from `/run/private/collect/influxdb-password`, the copy
//! supervise renders for collect's user from the mounted Secret.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::inputs::cgroup::CgroupInput;
pub use crate::inputs::disk::DiskInput;
use crate::inputs::http::{self, HttpInput};
pub use crate::inputs::influxdb::InfluxdbInput;
pub use crate::inputs::mysql::MysqlInput;
pub use crate::inputs::net::NetInput;
pub use crate::inputs::nginx::NginxInput;
pub use crate::inputs::phpfpm::PhpfpmInput;
pub use crate::inputs::procstat::{Matcher, ProcstatInput, Program};
pub use crate::inputs::prometheus::PrometheusInput;

/// A config that could not be used, naming the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    #[serde(deserialize_with = "daemon::duration::deserialize")]
    pub interval: Duration,
    pub service: String,
    pub pod: String,
    pub tags: std::collections::BTreeMap<String, String>,
    pub output: Output,
    pub inputs: Inputs,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: Duration::from_secs(10),
            service: String::new(),
            pod: String::new(),
            tags: Default::default(),
            output: Output::default(),
            inputs: Inputs::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Output {
    pub url: String,
    pub database: String,
    pub username: String,
    pub password_file: PathBuf,
    pub password: String,
    pub create_database: bool,
    #[serde(deserialize_with = "daemon::duration::deserialize")]
    pub timeout: Duration,
    pub batch_size: usize,
    pub buffer_limit: usize,
    #[serde(deserialize_with = "daemon::duration::deserialize")]
    pub buffer_duration: Duration,
    #[serde(deserialize_with = "daemon::duration::deserialize")]
    pub retry_initial: Duration,
    #[serde(deserialize_with = "daemon::duration::deserialize")]
    pub retry_max: Duration,
}

impl Default for Output {
    fn default() -> Self {
        Output {
            url: "http://influxdb:8086".into(),
            database: "metrics".into(),
            username: "collect".into(),
            password_file: "/run/private/collect/influxdb-password".into(),
            password: String::new(),
            create_database: true,
            timeout: Duration::from_secs(10),
            batch_size: 5000,
            buffer_limit: 0,
            buffer_duration: Duration::from_secs(15 * 60),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
        }
    }
}

/// Every input's section; each input's module owns its config type, its
/// defaults and its checks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Inputs {
    pub cgroup: CgroupInput,
    pub net: NetInput,
    pub disk: Option<DiskInput>,
    pub procstat: Option<ProcstatInput>,
    pub nginx: Option<NginxInput>,
    pub phpfpm: Option<PhpfpmInput>,
    pub mysql: Option<MysqlInput>,
    pub influxdb: Option<InfluxdbInput>,
    pub prometheus: Option<PrometheusInput>,
    pub internal: InternalInput,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InternalInput {
    pub enabled: bool,
}

impl Default for InternalInput {
    fn default() -> Self {
        InternalInput { enabled: true }
    }
}

impl Inputs {
    /// The HTTP inputs that are on, with their config key.
    pub fn http(&self) -> Vec<(&'static str, &dyn HttpInput)> {
        let mut out: Vec<(&'static str, &dyn HttpInput)> = Vec::new();
        if let Some(i) = &self.nginx {
            out.push(("inputs.nginx", i));
        }
        if let Some(i) = &self.phpfpm {
            out.push(("inputs.phpfpm", i));
        }
        if let Some(i) = &self.influxdb {
            out.push(("inputs.influxdb", i));
        }
        if let Some(i) = &self.prometheus {
            out.push(("inputs.prometheus", i));
        }
        out
    }
}

impl Config {
    /// Reads and checks the config at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks config text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_owned(),
            message,
        };
        if self.interval < Duration::from_millis(100) {
            return Err(bad("interval", "must be at least 100ms".into()));
        }
        http::check_url(&self.output.url).map_err(|m| bad("output.url", m))?;
        if self.output.database.is_empty() {
            return Err(bad("output.database", "must not be empty".into()));
        }
        if self.output.batch_size == 0 {
            return Err(bad("output.batch_size", "must be at least 1".into()));
        }
        if self.output.timeout.is_zero() {
            return Err(bad("output.timeout", "must be more than 0".into()));
        }
        if self.output.retry_initial.is_zero() {
            return Err(bad("output.retry_initial", "must be more than 0".into()));
        }
        if self.output.retry_max < self.output.retry_initial {
            return Err(bad(
                "output.retry_max",
                "must not be less than retry_initial".into(),
            ));
        }
        for (key, input) in self.inputs.http() {
            http::validate(key, input).map_err(|(k, m)| bad(&k, m))?;
        }
        if let Some(p) = &self.inputs.procstat {
            for prog in &p.programs {
                if prog.name().is_empty() {
                    return Err(bad(
                        "inputs.procstat.programs",
                        "a program name is empty".into(),
                    ));
                }
                if let Program::Spec(s) = prog
                    && s.pid_file.is_some()
                    && s.pattern.is_some()
                {
                    return Err(bad(
                        "inputs.procstat.programs",
                        format!("{}: give pid_file or pattern, not both", s.name),
                    ));
                }
            }
        }
        if let Some(d) = &self.inputs.disk
            && let Some(p) = d.paths.iter().find(|p| !p.is_absolute())
        {
            return Err(bad(
                "inputs.disk.paths",
                format!("{} is not absolute", p.display()),
            ));
        }
        Ok(())
    }

    /// Buffer capacity in points for `points_per_gather` points a round.
    pub fn buffer_limit(&self, points_per_gather: usize) -> usize {
        if self.output.buffer_limit > 0 {
            return self.output.buffer_limit;
        }
        let rounds = self
            .output
            .buffer_duration
            .as_millis()
            .div_ceil(self.interval.as_millis().max(1));
        let rounds = usize::try_from(rounds).unwrap_or(usize::MAX);
        // A little headroom: the point count of a round varies (new shards,
        // new label sets).
        rounds
            .saturating_mul(points_per_gather.max(1))
            .saturating_mul(5)
            / 4
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("test.toml"))
    }

    #[test]
    fn empty_config_has_the_documented_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.interval, Duration::from_secs(10));
        assert_eq!(c.output.url, "http://influxdb:8086");
        assert_eq!(c.output.database, "metrics");
        assert_eq!(c.output.username, "collect");
        assert!(c.inputs.cgroup.enabled && c.inputs.net.enabled);
        assert!(c.inputs.nginx.is_none() && c.inputs.mysql.is_none());
        // 15 minutes of 10 s rounds of 100 points, plus headroom.
        assert_eq!(c.buffer_limit(100), 90 * 100 * 5 / 4);
    }

    /// The key list at the top of this file is a valid config whose values
    /// are the defaults.
    #[test]
    fn documented_config_parses_to_the_defaults() {
        let doc: String = include_str!("config.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .skip_while(|l| *l != "```toml")
            .skip(1)
            .take_while(|l| *l != "```")
            .map(|l| format!("{l}\n"))
            .collect();
        let c = parse(&doc).unwrap();
        let d = Config::default();
        assert_eq!(c.interval, d.interval);
        assert_eq!(c.output.url, d.output.url);
        assert_eq!(c.output.password_file, d.output.password_file);
        assert_eq!(c.output.batch_size, d.output.batch_size);
        assert_eq!(c.output.retry_max, d.output.retry_max);
        assert_eq!(c.output.buffer_duration, d.output.buffer_duration);
        assert_eq!(c.inputs.cgroup.root, d.inputs.cgroup.root);
        let m = c.inputs.mysql.unwrap();
        assert_eq!(m.user, "collect");
        assert_eq!(m.port, 3306);
        assert_eq!(
            c.inputs.nginx.unwrap().url,
            "http://127.0.0.1:8080/nginx_status"
        );
    }

    #[test]
    fn programs_take_names_or_tables() {
        let c = parse(
            r#"
            [inputs.procstat]
            programs = ["nginx", { name = "php-fpm", pattern = "php-fpm: master" },
                        { name = "db", pid_file = "/run/db.pid" }]
            "#,
        )
        .unwrap();
        let p = c.inputs.procstat.unwrap().programs;
        assert_eq!(p[0].matcher(), Matcher::Name("nginx".into()));
        assert_eq!(p[1].matcher(), Matcher::Pattern("php-fpm: master".into()));
        assert_eq!(p[2].matcher(), Matcher::PidFile("/run/db.pid".into()));
    }

    #[test]
    fn bad_values_are_named() {
        let e = parse("interval = \"10x\"").unwrap_err().to_string();
        assert!(e.contains("interval") && e.contains("unit"), "{e}");
        let e = parse("[output]\nurl = \"ftp://x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("output.url"), "{e}");
        let e = parse("[inputs.nginx]\nurl = \"not a url\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("inputs.nginx.url"), "{e}");
        let e = parse("[output]\nbogus = 1").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn tls_keys_are_checked_for_every_http_input() {
        let c = parse(
            "[inputs.nginx]\nurl = \"https://127.0.0.1:8443/nginx_status\"\nserver_name = \"web\"\n\
             [inputs.influxdb]\nurl = \"https://[::1]:8086/debug/vars\"\nserver_name = \"influxdb\"\n",
        )
        .unwrap();
        assert_eq!(c.inputs.nginx.unwrap().server_name, "web");
        let e = parse("[inputs.phpfpm]\nurl = \"https://web:8443/fpm\"\nserver_name = \"web\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("inputs.phpfpm.server_name"), "{e}");
        let e = parse("[inputs.nginx]\nurl = \"https://127.0.0.1/\"\nserver_name = \"a b\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("inputs.nginx.server_name"), "{e}");
        let e = parse("[inputs.influxdb]\nca_file = \"/no/such/ca.crt\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("inputs.influxdb.ca_file") && e.contains("/no/such/ca.crt"),
            "{e}"
        );
        let e = parse("[inputs.nginx]\nurl = \"https://127.0.0.1/\"\ntls_ca = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls_ca"), "{e}");
    }
}
