//! The health endpoint and readiness checks.
#![allow(clippy::unwrap_used)]

mod support;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::*;

#[test]
fn healthz_turns_503_when_a_service_dies() {
    let dir = tempfile::tempdir().unwrap();
    // Four earlier starts in this pod.
    let restarts = dir.path().join("restarts");
    std::fs::write(&restarts, "4\n").unwrap();
    let restarts = restarts.to_str().unwrap().to_owned();
    let mut sv = start_in(
        dir,
        r#"
[stop]
grace_seconds = 4

[[program]]
name = "stubborn"
command = ["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"]

[[program]]
name = "victim"
command = ["sh", "-c", "echo $$ > {dir}/victim.pid; exec sleep 60"]
"#,
        &[("SUPERVISE_RESTARTS_FILE", &restarts)],
    );
    let victim = read_pid(&sv.path("victim.pid"));
    sv.wait_health();
    let (code, body) = sv.get("/healthz").unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["healthy"], true);
    assert_eq!(body["restarts"], 4);
    let p = &body["programs"][1];
    assert_eq!(p["name"], "victim");
    assert_eq!(p["kind"], "service");
    assert_eq!(p["state"], "running");
    assert_eq!(p["pid"], victim);
    assert_eq!(p["restarts"], 4);
    assert!(p["uptime_seconds"].as_f64().unwrap() >= 0.0, "{body}");

    kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    // The stubborn program holds the stop for its grace period: 503 meanwhile.
    wait_for(10, "healthz 503", || {
        sv.get("/healthz").is_some_and(|(c, _)| c == 503)
    });
    let (_, body) = sv.get("/healthz").unwrap();
    assert_eq!(body["healthy"], false);
    assert_eq!(body["programs"][1]["state"], "failed", "{body}");
    assert_eq!(
        body["programs"][1]["pid"],
        serde_json::Value::Null,
        "{body}"
    );
    assert_eq!(sv.get("/readyz").unwrap().0, 503);
    assert_eq!(sv.wait(20), 1);
}

/// A server that only starts serving once `{dir}/go` exists, checked by
/// `ready`, and a client `after` it.
fn readiness_case(ready: &str, serve: &str) {
    let mut sv = start(&format!(
        r#"
[[program]]
name = "server"
command = ["sh", "-c", '''while [ ! -e {{dir}}/go ]; do sleep 0.02; done; exec {serve}''']
ready = {ready}

[[program]]
name = "client"
command = ["sh", "-c", "touch {{dir}}/client.started; exec sleep 60"]
after = ["server"]
"#
    ));
    sv.wait_health();
    let (code, body) = sv.get("/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["programs"][0]["ready"], false);
    assert_eq!(body["programs"][1]["state"], "waiting", "{body}");
    assert_eq!(
        sv.get("/healthz").unwrap().0,
        200,
        "waiting is not unhealthy"
    );
    assert!(!sv.path("client.started").exists());

    std::fs::write(sv.path("go"), "").unwrap();
    wait_for(20, "readyz 200", || {
        sv.get("/readyz").is_some_and(|(c, _)| c == 200)
    });
    let started = sv.path("client.started");
    wait_for(10, "client started after server is ready", || {
        started.exists()
    });
    sv.wait_log("server is ready after");
    sv.signal(Signal::SIGTERM);
    assert_eq!(sv.wait(15), 0);
}

#[test]
fn readyz_waits_for_a_tcp_check() {
    let port = testbed::free_port().unwrap();
    readiness_case(
        &format!(r#"{{ tcp = "127.0.0.1:{port}" }}"#),
        &format!(
            r#"python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(60)""#
        ),
    );
}

#[test]
fn readyz_waits_for_a_unix_socket_check() {
    readiness_case(
        r#"{ unix = "{dir}/server.sock" }"#,
        r#"python3 -c "import socket,time; s=socket.socket(socket.AF_UNIX); s.bind('{dir}/server.sock'); s.listen(); time.sleep(60)""#,
    );
}

#[test]
fn readyz_waits_for_an_http_check() {
    let port = testbed::free_port().unwrap();
    readiness_case(
        &format!(r#"{{ http = "http://127.0.0.1:{port}/" }}"#),
        &format!("python3 -m http.server {port} --bind 127.0.0.1 --directory {{dir}}"),
    );
}

#[test]
fn readyz_waits_for_a_command_check() {
    readiness_case(r#"{ command = ["test", "-e", "{dir}/go"] }"#, "sleep 60");
}

#[test]
fn a_check_that_never_passes_fails_the_container() {
    let mut sv = start(
        r#"
[[program]]
name = "never"
command = ["sleep", "60"]
ready = { command = ["false"] }
ready_timeout_seconds = 1
"#,
    );
    assert_eq!(sv.wait(15), 1);
    assert!(
        sv.stderr().contains(
            "never: not ready after 1 s (last check: command \"false\" exited with status 1)"
        ),
        "{}",
        sv.stderr()
    );
}
