//! MariaDB/MySQL `SHOW GLOBAL STATUS` (needs no privilege beyond a login;
//! the contract's `collect` user has PROCESS and REPLICATION CLIENT).

use serde::Deserialize;
use std::path::PathBuf;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use crate::line_protocol::{FieldValue, Point};

#[derive(Debug)]
pub struct Mysql {
    config: MysqlInput,
    conn: Option<Conn>,
}

impl Mysql {
    pub fn new(config: MysqlInput) -> Self {
        Mysql { config, conn: None }
    }

    fn server(&self) -> String {
        if self.config.socket.as_os_str().is_empty() {
            format!("{}:{}", self.config.host, self.config.port)
        } else {
            self.config.socket.display().to_string()
        }
    }

    async fn connect(&self) -> Result<Conn, String> {
        // Read at each connect so a rotated secret is picked up.
        let password = if self.config.password_file.as_os_str().is_empty() {
            self.config.password.clone()
        } else {
            daemon::secret::read(&self.config.password_file)
                .map_err(|e| format!("inputs.mysql.password_file: {e}"))?
        };
        let mut opts = OptsBuilder::default()
            .user(Some(self.config.user.clone()))
            .pass(Some(password))
            .prefer_socket(false);
        if self.config.socket.as_os_str().is_empty() {
            opts = opts
                .ip_or_hostname(self.config.host.clone())
                .tcp_port(self.config.port);
        } else {
            opts = opts.socket(Some(self.config.socket.display().to_string()));
        }
        Conn::new(opts).await.map_err(|e| e.to_string())
    }

    pub async fn gather(&mut self) -> Result<Vec<Point>, String> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.connect().await?,
        };
        let rows: Vec<(String, Option<String>)> = conn
            .query("SHOW GLOBAL STATUS")
            .await
            .map_err(|e| e.to_string())?;
        // Kept only after a successful query: a broken connection is
        // dropped and made again next round.
        self.conn = Some(conn);
        let mut p = Point::new("mysql").tag("server", self.server());
        for (name, value) in rows {
            if let Some(v) = value.as_deref().and_then(status_value) {
                p = p.field(name.to_ascii_lowercase(), v);
            }
        }
        Ok(vec![p])
    }
}

/// Numbers as integers (else floats); ON/OFF, YES/NO as 1/0; other text
/// is not a metric.
fn status_value(v: &str) -> Option<FieldValue> {
    match v {
        "ON" | "YES" => return Some(FieldValue::Integer(1)),
        "OFF" | "NO" => return Some(FieldValue::Integer(0)),
        _ => {}
    }
    if let Ok(i) = v.parse::<i64>() {
        return Some(FieldValue::Integer(i));
    }
    if let Ok(u) = v.parse::<u64>() {
        return Some(u.into());
    }
    v.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(FieldValue::Float)
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MysqlInput {
    pub host: String,
    pub port: u16,
    pub socket: PathBuf,
    pub user: String,
    pub password_file: PathBuf,
    pub password: String,
}

impl Default for MysqlInput {
    fn default() -> Self {
        MysqlInput {
            host: "127.0.0.1".into(),
            port: 3306,
            socket: PathBuf::new(),
            user: "collect".into(),
            password_file: "/run/private/collect/mysql-password".into(),
            password: String::new(),
        }
    }
}
