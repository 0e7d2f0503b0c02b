//! A program's end decides the container's fate.
#![allow(clippy::unwrap_used)]

mod support;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::*;

#[test]
fn a_service_exit_stops_the_rest_and_exits_non_zero() {
    let mut sv = start(
        r#"
[[program]]
name = "steady"
command = ["sh", "-c", "echo $$ > {dir}/steady.pid; exec sleep 60"]

[[program]]
name = "crasher"
command = ["sh", "-c", "echo $$ > {dir}/crasher.pid; while [ ! -e {dir}/go ]; do sleep 0.02; done; exit 7"]
after = ["steady"]
"#,
    );
    let steady = read_pid(&sv.path("steady.pid"));
    let crasher = read_pid(&sv.path("crasher.pid"));
    std::fs::write(sv.path("go"), "").unwrap();
    assert_eq!(sv.wait(15), 1);
    let log = sv.stderr();
    assert!(
        log.contains(&format!(
            "crasher (service, pid {crasher}) exited with status 7 after "
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("stopping steady (pid {steady}) with SIGTERM")),
        "{log}"
    );
    assert!(log.contains("exiting with status 1"), "{log}");
    assert!(proc_state(steady).is_none());
}

#[test]
fn a_killed_service_is_reported_with_its_signal_and_duration() {
    // The pid file appears only after the victim has lived 0.3 s, so the
    // logged duration has a lower bound the test knows.
    let mut sv = start(
        r#"
[[program]]
name = "victim"
command = ["sh", "-c", "sleep 0.3; echo $$ > {dir}/pid; exec sleep 60"]
"#,
    );
    let pid = read_pid(&sv.path("pid"));
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    assert_eq!(sv.wait(15), 1);
    let log = sv.stderr();
    let line = log
        .lines()
        .find(|l| {
            l.contains(&format!(
                "victim (service, pid {pid}) was killed by signal SIGKILL after "
            ))
        })
        .unwrap_or_else(|| panic!("{log}"));
    let secs: f64 = line
        .rsplit("after ")
        .next()
        .unwrap()
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(secs >= 0.3, "{line}");
}

#[test]
fn a_failing_oneshot_stops_everything_and_starts_nothing_after_it() {
    let mut sv = start(
        r#"
[[program]]
name = "steady"
command = ["sleep", "60"]

[[program]]
name = "init"
kind = "oneshot"
command = ["sh", "-c", "exit 3"]
after = ["steady"]

[[program]]
name = "app"
command = ["sh", "-c", "touch {dir}/app.started; exec sleep 60"]
after = ["init"]
"#,
    );
    assert_eq!(sv.wait(15), 1);
    let log = sv.stderr();
    assert!(log.contains("init (oneshot, pid "), "{log}");
    assert!(log.contains(") exited with status 3 after "), "{log}");
    assert!(
        !sv.path("app.started").exists(),
        "app must not start after a failed oneshot"
    );
}

#[test]
fn a_successful_oneshot_lets_dependents_start() {
    let mut sv = start(
        r#"
[[program]]
name = "init"
kind = "oneshot"
command = ["sh", "-c", "touch {dir}/init.done"]

[[program]]
name = "app"
command = ["sh", "-c", "test -e {dir}/init.done && touch {dir}/app.saw-init; exec sleep 60"]
after = ["init"]
"#,
    );
    let saw = sv.path("app.saw-init");
    wait_for(10, "app started after init", || saw.exists());
    sv.wait_health();
    wait_for(10, "ready", || {
        sv.get("/readyz").is_some_and(|(c, _)| c == 200)
    });
    let (code, body) = sv.get("/healthz").unwrap();
    assert_eq!(code, 200);
    assert_eq!(body["programs"][0]["state"], "completed", "{body}");
    assert_eq!(body["programs"][1]["state"], "running", "{body}");
    assert!(sv.running());
    sv.signal(Signal::SIGTERM);
    assert_eq!(sv.wait(15), 0);
}

#[test]
fn only_oneshots_exit_zero_when_all_complete() {
    let mut sv = start(
        r#"
[[program]]
name = "first"
kind = "oneshot"
command = ["true"]

[[program]]
name = "second"
kind = "oneshot"
command = ["sh", "-c", "touch {dir}/second"]
after = ["first"]
"#,
    );
    assert_eq!(sv.wait(15), 0);
    assert!(sv.path("second").exists());
    assert!(
        sv.stderr().contains("every program has completed"),
        "{}",
        sv.stderr()
    );
}

#[test]
fn a_command_that_cannot_start_fails_the_container() {
    let mut sv = start(
        r#"
[[program]]
name = "ghost"
command = ["/nonexistent/binary"]
"#,
    );
    assert_eq!(sv.wait(15), 1);
    assert!(
        sv.stderr()
            .contains("ghost: cannot start \"/nonexistent/binary\""),
        "{}",
        sv.stderr()
    );
}
