//! Benchmark bed for `bench/collect.sh`: starts real InfluxDB, MariaDB,
//! nginx and php-fpm, writes a collect config with every input enabled,
//! prints `CONFIG <path>` and `INFLUX <url>`, and keeps the servers up until
//! its stdin closes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/web/mod.rs"]
mod web;

use std::io::Read;

fn main() {
    let influx = testbed::Influxdb::start().expect("start InfluxDB");
    let db = testbed::Mariadb::start().expect("start MariaDB");
    let web = web::StatusServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("mysql-password");
    std::fs::write(&pw, "bench-pw\n").unwrap();
    db.sql(
        "CREATE USER 'collect'@'%' IDENTIFIED BY 'bench-pw';\
         GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'collect'@'%';",
    )
    .expect("create the collect user");
    let config = dir.path().join("collect.toml");
    std::fs::write(
        &config,
        format!(
            r#"interval = "10s"
service = "bench"
pod = "bench-0"
[output]
url = "{influx}"
username = ""
[inputs.disk]
paths = ["/"]
[inputs.procstat]
programs = [{{ name = "nginx", pid_file = "{nginx_pid}" }},
            {{ name = "php-fpm", pattern = "php-fpm: " }},
            "mariadbd", "influxd"]
[inputs.nginx]
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
            influx = influx.url(),
            nginx_pid = web.nginx_pid_file().display(),
            nginx = web.url("/nginx_status"),
            fpm = web.url("/fpm-status"),
            port = db.port(),
            pw = pw.display(),
            metrics = web.url("/metrics"),
        ),
    )
    .unwrap();
    println!("CONFIG {}", config.display());
    println!("INFLUX {}", influx.url());
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}
