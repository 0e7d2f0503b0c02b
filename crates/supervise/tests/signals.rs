//! Signal forwarding and the orderly stop.
#![allow(clippy::unwrap_used)]

mod support;

use nix::sys::signal::Signal;
use support::*;

#[test]
fn hup_and_quit_are_forwarded_without_stopping() {
    let mut sv = start(
        r#"
[[program]]
name = "trapper"
command = ["sh", "-c", """
trap 'echo hup >> {dir}/got' HUP
trap 'echo quit >> {dir}/got' QUIT
echo $$ > {dir}/pid
while :; do sleep 0.05; done
"""]
"#,
    );
    read_pid(&sv.path("pid"));
    let got = sv.path("got");
    sv.signal(Signal::SIGHUP);
    wait_for(10, "HUP to reach the program", || {
        std::fs::read_to_string(&got).is_ok_and(|t| t.contains("hup"))
    });
    sv.signal(Signal::SIGQUIT);
    wait_for(10, "QUIT to reach the program", || {
        std::fs::read_to_string(&got).is_ok_and(|t| t.contains("quit"))
    });
    sv.wait_log("forwarding SIGHUP to trapper");
    assert!(sv.running(), "HUP/QUIT must not stop supervise");
    assert_eq!(sv.get("/healthz").unwrap().0, 200);
    sv.signal(Signal::SIGTERM);
    assert_eq!(sv.wait(15), 0);
}

#[test]
fn stop_goes_in_reverse_order_then_kills_what_ignores_term() {
    let mut sv = start(
        r#"
[stop]
grace_seconds = 1

[[program]]
name = "stubborn"
command = ["sh", "-c", "trap '' TERM; echo $$ > {dir}/stubborn.pid; while :; do sleep 0.05; done"]

[[program]]
name = "a"
command = ["sh", "-c", "trap 'echo a >> {dir}/order; exit 0' TERM; touch {dir}/a.up; while :; do sleep 0.05; done"]
after = ["stubborn"]

[[program]]
name = "b"
command = ["sh", "-c", "trap 'echo b >> {dir}/order; exit 0' TERM; touch {dir}/b.up; while :; do sleep 0.05; done"]
after = ["a"]
"#,
    );
    let stubborn = read_pid(&sv.path("stubborn.pid"));
    let (a, b) = (sv.path("a.up"), sv.path("b.up"));
    wait_for(10, "all three up", || a.exists() && b.exists());
    sv.signal(Signal::SIGTERM);
    assert_eq!(sv.wait(15), 0);
    assert_eq!(std::fs::read_to_string(sv.path("order")).unwrap(), "b\na\n");
    let log = sv.stderr();
    assert!(log.contains("received SIGTERM: stopping"), "{log}");
    let (pb, pa, ps) = (
        log.find("stopping b").unwrap(),
        log.find("stopping a").unwrap(),
        log.find("stopping stubborn").unwrap(),
    );
    assert!(pb < pa && pa < ps, "{log}");
    assert!(
        log.contains(&format!(
            "stubborn (pid {stubborn}) still running after 1 s: SIGKILL"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "stubborn (service, pid {stubborn}) was killed by signal SIGKILL"
        )),
        "{log}"
    );
    assert!(proc_state(stubborn).is_none(), "stubborn still exists");
}

#[test]
fn sigint_stops_too() {
    let mut sv = start(
        r#"
[[program]]
name = "sleeper"
command = ["sh", "-c", "echo $$ > {dir}/pid; exec sleep 60"]
"#,
    );
    let pid = read_pid(&sv.path("pid"));
    sv.signal(Signal::SIGINT);
    assert_eq!(sv.wait(15), 0);
    assert!(
        sv.stderr().contains(&format!(
            "sleeper (service, pid {pid}) was killed by signal SIGINT"
        )),
        "{}",
        sv.stderr()
    );
    assert!(proc_state(pid).is_none());
}
