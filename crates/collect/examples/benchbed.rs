//! Benchmark bed for `bench/collect.sh`: starts real InfluxDB, MariaDB,
//! nginx and php-fpm, writes a collect config with every input enabled,
//! prints `CONFIG <path>` and `INFLUX <url>`, and keeps the servers up until
//! its stdin closes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/peers/mod.rs"]
mod peers;

use std::io::Read;

fn main() {
    let peers = peers::Peers::start();
    let config = peers.dir().join("collect.toml");
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
{inputs}"#,
            influx = peers.influx.url(),
            nginx_pid = peers.web.nginx_pid_file().display(),
            inputs = peers.inputs(),
        ),
    )
    .unwrap();
    println!("CONFIG {}", config.display());
    println!("INFLUX {}", peers.influx.url());
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}
