//! Readiness checks: TCP connect, unix socket connect, HTTP GET, command.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::config::Ready;
use crate::process::{Children, Spec};

/// One attempt may take this long.
const ATTEMPT: Duration = Duration::from_secs(3);

/// `http://host:port/path`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    pub authority: String,
    pub path: String,
}

impl HttpTarget {
    pub fn parse(url: &str) -> Result<HttpTarget, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !authority.ends_with(']')
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(HttpTarget {
            authority,
            path: path.to_owned(),
        })
    }
}

/// One attempt of `check`: Ok when the program is ready.
pub async fn probe(check: &Ready, children: &Children) -> Result<(), String> {
    match timeout(ATTEMPT, attempt(check, children)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", ATTEMPT.as_secs())),
    }
}

async fn attempt(check: &Ready, children: &Children) -> Result<(), String> {
    match check {
        Ready::Tcp(addr) => tokio::net::TcpStream::connect(addr.as_str())
            .await
            .map(drop)
            .map_err(|e| format!("tcp {addr}: {e}")),
        Ready::Unix(path) => tokio::net::UnixStream::connect(path)
            .await
            .map(drop)
            .map_err(|e| format!("unix {}: {e}", path.display())),
        Ready::Http(url) => http_get(url).await,
        Ready::Command(command) => {
            let env = Default::default();
            let started = children
                .spawn(&Spec {
                    command,
                    env: &env,
                    directory: None,
                    credentials: None,
                    capture: false,
                })
                .map_err(|e| format!("command {:?}: {e}", command[0]))?;
            let pid = started.pid;
            // If this attempt times out, the guard kills the probe's group.
            let guard = KillOnDrop(pid);
            let exit = started
                .exit
                .await
                .map_err(|_| "command: reaper gone".to_string())?;
            std::mem::forget(guard);
            if exit.success() {
                Ok(())
            } else {
                Err(format!("command {:?} {exit}", command[0]))
            }
        }
    }
}

struct KillOnDrop(nix::unistd::Pid);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        crate::process::signal_group(self.0, nix::sys::signal::Signal::SIGKILL);
    }
}

async fn http_get(url: &str) -> Result<(), String> {
    let target = HttpTarget::parse(url)?;
    let mut stream = tokio::net::TcpStream::connect(target.authority.as_str())
        .await
        .map_err(|e| format!("http {url}: {e}"))?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: supervise\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("http {url}: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("http {url}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("http {url}: not an HTTP answer"))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("http {url}: status {status}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            HttpTarget::parse("http://127.0.0.1:8080/x?y").unwrap(),
            HttpTarget {
                authority: "127.0.0.1:8080".into(),
                path: "/x?y".into()
            }
        );
        assert_eq!(
            HttpTarget::parse("http://localhost").unwrap().authority,
            "localhost:80"
        );
        assert!(HttpTarget::parse("https://a/").is_err());
    }
}
