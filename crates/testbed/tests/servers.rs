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
