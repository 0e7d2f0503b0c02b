//! The test servers really start, answer and keep their data across a restart.

use std::process::Command;

#[test]
fn mariadb_starts_and_keeps_data_across_restart() {
    let mut db = testbed::Mariadb::start().expect("start mariadb");
    db.sql("CREATE DATABASE kept; CREATE TABLE kept.t (v INT); INSERT INTO kept.t VALUES (42);")
        .expect("write");
    db.restart().expect("restart");
    assert_eq!(db.sql("SELECT v FROM kept.t").expect("read").trim(), "42");
}

#[test]
fn influxdb_starts_and_answers_ping() {
    let influx = testbed::Influxdb::start().expect("start influxdb");
    let status = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{}/ping", influx.url()))
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&status.stdout), "204");
}

#[test]
fn nginx_serves_stub_status_and_php_fpm_pool_status() {
    use testbed::web::{Nginx, PhpFpm, status_locations};
    let fpm = PhpFpm::start("probe", 2).expect("start php-fpm");
    let port = testbed::free_port().expect("free port");
    let nginx = Nginx::start(
        port,
        &format!(
            "server {{ listen 127.0.0.1:{port};\n{} }}",
            status_locations(&fpm)
        ),
    )
    .expect("start nginx");
    let get = |path: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stub = get("/nginx_status");
    assert!(stub.starts_with("Active connections:"), "{stub}");
    let pool = get("/fpm-status");
    assert!(
        pool.contains("pool:                 probe"),
        "{pool}\n{}",
        fpm.logs()
    );
    assert!(nginx.pid_file().exists(), "{}", nginx.logs());
}
