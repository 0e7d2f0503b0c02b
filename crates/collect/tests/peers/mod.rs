//! The real servers collect reads from, for the end-to-end test and the
//! benchmark bed: InfluxDB (also where points go), MariaDB with collect's
//! account, and Debian's nginx + php-fpm as a pod's local status server.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tempfile::TempDir;
use testbed::web::{Nginx, PhpFpm, status_locations};

/// What `/metrics` serves: a small Prometheus text exposition (nginx
/// unescapes `\\"` and `\\n` in the `return` string).
const METRICS: &str = "# HELP test_requests_total Requests.\\n# TYPE test_requests_total counter\\n\
test_requests_total{code=\\\"200\\\"} 7\\ntest_up 1\\n";

/// The password of MariaDB's `collect` account.
const MYSQL_PASSWORD: &str = "s3cret-collect";

/// nginx with `/nginx_status` (stub_status), `/fpm-status` (the php-fpm pool
/// `status`, two workers), `/metrics` and `/` answering 200, on
/// `127.0.0.1:port()`.
#[derive(Debug)]
pub struct StatusServer {
    // nginx is declared first: it stops before php-fpm.
    nginx: Nginx,
    fpm: PhpFpm,
    port: u16,
}

impl StatusServer {
    pub fn start() -> Self {
        let fpm = PhpFpm::start("status", 2).expect("start php-fpm");
        let port = testbed::free_port().expect("free port");
        let nginx = Nginx::start(
            port,
            &format!(
                "server {{\n listen 127.0.0.1:{port};\n{status}\
                 location = /metrics {{ default_type text/plain; return 200 \"{METRICS}\"; }}\n\
                 location / {{ return 200 \"ok\\n\"; }}\n}}\n",
                status = status_locations(&fpm),
            ),
        )
        .expect("start nginx");
        StatusServer { nginx, fpm, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The nginx master's pid file.
    pub fn nginx_pid_file(&self) -> PathBuf {
        self.nginx.pid_file()
    }
}

/// Every server collect has an input for, started together.
#[derive(Debug)]
pub struct Peers {
    pub influx: testbed::Influxdb,
    pub db: testbed::Mariadb,
    pub web: StatusServer,
    /// Holds the file with the MySQL password of collect's account.
    secrets: TempDir,
}

impl Peers {
    pub fn start() -> Self {
        let influx = testbed::Influxdb::start().expect("start InfluxDB");
        let db = testbed::Mariadb::start().expect("start MariaDB");
        let web = StatusServer::start();
        let secrets = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            secrets.path().join("mysql-collect"),
            format!("{MYSQL_PASSWORD}\n"),
        )
        .expect("write the MySQL password file");
        db.sql(&format!(
            "CREATE USER 'collect'@'%' IDENTIFIED BY '{MYSQL_PASSWORD}';\
             GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'collect'@'%';"
        ))
        .expect("create the collect user");
        Peers {
            influx,
            db,
            web,
            secrets,
        }
    }

    /// A directory of this run's own (for a disk input path, or a config).
    pub fn dir(&self) -> &Path {
        self.secrets.path()
    }

    /// collect's config sections for the inputs these servers feed: nginx,
    /// phpfpm, mysql, influxdb and prometheus.
    pub fn inputs(&self) -> String {
        format!(
            r#"[inputs.nginx]
url = "{nginx}"
[inputs.phpfpm]
url = "{fpm}"
[inputs.mysql]
port = {port}
password_file = "{pw}"
[inputs.influxdb]
url = "{influx}/debug/vars"
[inputs.prometheus]
urls = ["{metrics}"]
"#,
            nginx = self.web.url("/nginx_status"),
            fpm = self.web.url("/fpm-status"),
            port = self.db.port(),
            pw = self.secrets.path().join("mysql-collect").display(),
            influx = self.influx.url(),
            metrics = self.web.url("/metrics"),
        )
    }
}
