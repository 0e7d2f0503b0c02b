//! PID 1 duties when supervise is not PID 1: it becomes a child subreaper,
//! adopts the orphans of its programs and reaps them.
#![allow(clippy::unwrap_used)]

mod support;

use support::*;

#[test]
fn orphans_are_adopted_and_reaped() {
    // Five grandchildren whose parent shell exits at once: orphans.
    let mut sv = start(
        r#"
[[program]]
name = "parent"
command = ["sh", "-c", """
for i in 1 2 3 4 5; do
  sh -c 'sh -c "while [ ! -e {dir}/go ]; do sleep 0.02; done; exit $0" $1 & echo $! >> {dir}/orphans' x $i
done
touch {dir}/spawned
exec sleep 60
"""]
"#,
    );
    let spawned = sv.path("spawned");
    wait_for(10, "orphans spawned", || spawned.exists());
    let orphans: Vec<i32> = std::fs::read_to_string(sv.path("orphans"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(orphans.len(), 5);
    let me = sv.pid().as_raw();
    for &pid in &orphans {
        // The subreaper, not init, is the orphan's new parent.
        wait_for(5, "orphan re-parented to supervise", || {
            proc_state(pid).is_some_and(|(_, ppid)| ppid == me)
        });
    }
    std::fs::write(sv.path("go"), "").unwrap();
    for &pid in &orphans {
        // Gone from /proc entirely: reaped, not left as a zombie.
        wait_for(10, "orphan reaped", || proc_state(pid).is_none());
    }
    assert!(
        zombies_of(me).is_empty(),
        "zombies left: {:?}",
        zombies_of(me)
    );
    for &pid in &orphans {
        sv.wait_log(&format!("reaped orphan pid {pid}"));
    }
    // Orphans are not programs: their end does not stop the container.
    assert!(sv.running());
    let (code, body) = sv.get("/healthz").unwrap();
    assert_eq!(code, 200, "{body}");
    sv.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(sv.wait(15), 0);
}

#[test]
fn exit_statuses_of_orphans_are_logged() {
    let mut sv = start(
        r#"
[[program]]
name = "parent"
command = ["sh", "-c", "sh -c 'sh -c \"while [ ! -e {dir}/go ]; do sleep 0.02; done; exit 9\" & echo $! > {dir}/orphan'; exec sleep 60"]
"#,
    );
    let pid = read_pid(&sv.path("orphan"));
    std::fs::write(sv.path("go"), "").unwrap();
    sv.wait_log(&format!(
        "reaped orphan pid {pid}, which exited with status 9"
    ));
    assert!(zombies_of(sv.pid().as_raw()).is_empty());
    sv.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(sv.wait(15), 0);
}

#[test]
fn as_pid_1_of_its_own_pid_namespace_it_reaps_orphans() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "a PID namespace needs root: run the suite as root, as tests/run.sh does"
    );
    assert!(
        std::path::Path::new("/usr/bin/unshare").exists(),
        "unshare (util-linux) is not installed"
    );
    let dir = tempfile::tempdir().unwrap();
    // Inside the namespace: orphan a child, check that PID 1 adopted it,
    // let it end, and wait until it is gone from /proc (reaped).
    let mut sv = start_wrapped(
        &["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"],
        dir,
        r#"
[[program]]
name = "parent"
command = ["sh", "-c", '''
sh -c 'while [ ! -e {dir}/go ]; do sleep 0.02; done & echo $! > {dir}/orphan'
o=$(cat {dir}/orphan)
while [ "$(cut -d' ' -f4 /proc/$o/stat)" != 1 ]; do sleep 0.02; done
echo $$ > {dir}/self
touch {dir}/go
while [ -e /proc/$o ]; do sleep 0.02; done
touch {dir}/reaped
exec sleep 60
''']
"#,
        &[],
    );
    let reaped = sv.path("reaped");
    wait_for(15, "the orphan adopted by PID 1 and reaped", || {
        reaped.exists()
    });
    let orphan = read_pid(&sv.path("orphan"));
    sv.wait_log(&format!(
        "reaped orphan pid {orphan}, which exited with status 0"
    ));
    // supervise itself is the first child of unshare on the host side.
    let unshare = sv.pid().as_raw();
    let children =
        std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).unwrap();
    let supervise: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{supervise}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("NSpid:") && l.trim_end().ends_with("\t1")),
        "supervise is not PID 1 in its namespace:\n{status}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervise),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(sv.wait(15), 0, "{}", sv.stderr());
}
