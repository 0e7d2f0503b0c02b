//! The parsed `supervise.toml` and its validation.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything wrong with a config file, each naming the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub health: Health,
    #[serde(default)]
    pub stop: Stop,
    #[serde(default, rename = "template")]
    pub templates: Vec<Template>,
    #[serde(default, rename = "program")]
    pub programs: Vec<Program>,
}

/// `[health]`: where the probe endpoint listens, and where supervise
/// counts its own starts (see `restarts`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Absolute path of the restarts file; none: restarts are reported as 0.
    pub restarts_file: Option<PathBuf>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            listen: default_listen(),
            restarts_file: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9901))
}

/// `[stop]`: how long programs get between SIGTERM and SIGKILL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    #[serde(default = "default_grace")]
    pub grace_seconds: u64,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            grace_seconds: default_grace(),
        }
    }
}

fn default_grace() -> u64 {
    10
}

/// `[[template]]`: a file rendered from `${VAR}` placeholders before start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub source: PathBuf,
    pub target: PathBuf,
    /// Octal permission bits, e.g. `"0640"`; 0644 when absent.
    #[serde(default, deserialize_with = "deserialize_mode")]
    pub mode: Option<u32>,
    /// `user` or `user:group` owning the target (default: supervise's, root);
    /// looked up at start, like a program's `user`.
    #[serde(default)]
    pub owner: Option<String>,
    /// Copied byte for byte, no placeholders: a private copy of a mounted
    /// Secret for the one program that may read it.
    #[serde(default)]
    pub verbatim: bool,
}

fn deserialize_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let text = String::deserialize(d)?;
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!("mode {text:?} is not an octal mode like \"0640\""))
        })
}

/// Whether a program runs for the container's lifetime or must finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Long-running; its end, with any status, stops the container.
    #[default]
    Service,
    /// Must exit 0; programs `after` it start once it has.
    Oneshot,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Service => "service",
            Kind::Oneshot => "oneshot",
        })
    }
}

/// A readiness check: exactly one of the four forms.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Ready {
    /// `host:port` accepts a TCP connection.
    Tcp(String),
    /// A unix stream socket accepts a connection.
    Unix(PathBuf),
    /// `http://host:port/path` answers a GET with a 2xx or 3xx status.
    Http(String),
    /// A command exits 0.
    Command(Vec<String>),
}

/// `[[program]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    pub name: String,
    pub command: Vec<String>,
    #[serde(default)]
    pub kind: Kind,
    pub user: Option<String>,
    pub directory: Option<PathBuf>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub after: Vec<String>,
    pub ready: Option<Ready>,
    /// How long the readiness check may keep failing before supervise gives
    /// up and stops the container (optional; 120 s).
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_seconds: u64,
}

fn default_ready_timeout() -> u64 {
    120
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates `text`; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.programs.is_empty() {
            return Err("no [[program]] defined".into());
        }
        if let Some(file) = &self.health.restarts_file
            && !file.is_absolute()
        {
            return Err(format!(
                "[health] restarts_file {file:?} must be an absolute path"
            ));
        }
        let mut index = HashMap::new();
        for (i, p) in self.programs.iter().enumerate() {
            if p.name.is_empty() || p.name.chars().any(|c| c.is_whitespace() || c == '|') {
                return Err(format!(
                    "program #{}: name {:?} must be non-empty, without spaces or '|'",
                    i + 1,
                    p.name
                ));
            }
            if index.insert(p.name.as_str(), i).is_some() {
                return Err(format!("duplicate program name {:?}", p.name));
            }
            if p.command.is_empty() || p.command[0].is_empty() {
                return Err(format!("program {:?}: command is empty", p.name));
            }
            if p.kind == Kind::Oneshot && p.ready.is_some() {
                return Err(format!(
                    "program {:?}: a oneshot is ready when it has exited 0; remove its `ready` check",
                    p.name
                ));
            }
            if let Some(Ready::Command(c)) = &p.ready
                && c.is_empty()
            {
                return Err(format!("program {:?}: ready command is empty", p.name));
            }
            if let Some(Ready::Http(url)) = &p.ready {
                crate::readiness::HttpTarget::parse(url)
                    .map_err(|e| format!("program {:?}: ready http: {e}", p.name))?;
            }
        }
        for p in &self.programs {
            for dep in &p.after {
                if !index.contains_key(dep.as_str()) {
                    return Err(format!(
                        "program {:?}: `after` names {dep:?}, which is not a program",
                        p.name
                    ));
                }
            }
        }
        self.start_order().map(|_| ())
    }

    /// Program indices in an order where each comes after everything in its
    /// `after`, otherwise in file order; an error names a dependency cycle.
    pub fn start_order(&self) -> Result<Vec<usize>, String> {
        let index: HashMap<&str, usize> = self
            .programs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect();
        // 0 = unvisited, 1 = on the current path, 2 = done.
        let mut mark = vec![0u8; self.programs.len()];
        let mut order = Vec::with_capacity(self.programs.len());
        let mut path = Vec::new();
        for i in 0..self.programs.len() {
            self.visit(i, &index, &mut mark, &mut path, &mut order)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        i: usize,
        index: &HashMap<&str, usize>,
        mark: &mut [u8],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), String> {
        match mark[i] {
            2 => return Ok(()),
            1 => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut names: Vec<&str> = path[start..]
                    .iter()
                    .map(|&p| self.programs[p].name.as_str())
                    .collect();
                names.push(&self.programs[i].name);
                return Err(format!("cycle in `after`: {}", names.join(" -> ")));
            }
            _ => {}
        }
        mark[i] = 1;
        path.push(i);
        for dep in &self.programs[i].after {
            if let Some(&d) = index.get(dep.as_str()) {
                self.visit(d, index, mark, path, order)?;
            }
        }
        path.pop();
        mark[i] = 2;
        order.push(i);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("t.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn documented_example_parses() {
        let c = parse(
            r#"
[health]
listen = "0.0.0.0:9901"
restarts_file = "/run/supervise/restarts"
[stop]
grace_seconds = 10
[[template]]
source = "/a"
target = "/b"
mode = "0640"
[[program]]
name = "php-fpm"
command = ["/usr/sbin/php-fpm82", "-F"]
kind = "service"
user = "nobody"
directory = "/"
env = { PHP_INI_SCAN_DIR = "/etc/php82/conf.d" }
ready = { unix = "/run/php-fpm.sock" }
[[program]]
name = "nginx"
command = ["/usr/sbin/nginx", "-g", "daemon off;"]
after = ["php-fpm"]
ready = { http = "http://127.0.0.1:8080/" }
"#,
        )
        .unwrap();
        assert_eq!(c.templates[0].mode, Some(0o640));
        assert_eq!(
            c.health.restarts_file.as_deref(),
            Some(Path::new("/run/supervise/restarts"))
        );
        assert_eq!(
            c.programs[0].ready,
            Some(Ready::Unix("/run/php-fpm.sock".into()))
        );
        assert_eq!(c.start_order().unwrap(), vec![0, 1]);
    }

    #[test]
    fn order_follows_after_then_file_order() {
        let c = parse(
            r#"
[[program]]
name = "a"
command = ["x"]
after = ["c"]
[[program]]
name = "b"
command = ["x"]
[[program]]
name = "c"
command = ["x"]
"#,
        )
        .unwrap();
        assert_eq!(c.start_order().unwrap(), vec![2, 0, 1]);
    }

    #[test]
    fn cycle_is_named() {
        let e = parse(
            r#"
[[program]]
name = "a"
command = ["x"]
after = ["b"]
[[program]]
name = "b"
command = ["x"]
after = ["a"]
"#,
        )
        .unwrap_err();
        assert!(e.contains("cycle in `after`: a -> b -> a"), "{e}");
    }

    #[test]
    fn a_relative_restarts_file_is_rejected() {
        let e =
            parse("[health]\nrestarts_file = 'restarts'\n[[program]]\nname='a'\ncommand=['x']\n")
                .unwrap_err();
        assert!(
            e.contains("[health] restarts_file \"restarts\" must be an absolute path"),
            "{e}"
        );
    }

    #[test]
    fn bad_mode_and_two_ready_forms_are_rejected() {
        let e = parse("[[template]]\nsource='a'\ntarget='b'\nmode='999'\n[[program]]\nname='a'\ncommand=['x']\n")
            .unwrap_err();
        assert!(e.contains("octal"), "{e}");
        let e = parse("[[program]]\nname='a'\ncommand=['x']\nready={tcp='a:1', unix='/x'}\n")
            .unwrap_err();
        assert!(e.contains("t.toml"), "{e}");
    }
}
