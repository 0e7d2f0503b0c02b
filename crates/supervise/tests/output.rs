//! Output pass-through: prefixes, and a flood that nobody reads.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Read;
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::*;

#[test]
fn lines_are_prefixed_with_the_program_name_on_the_same_stream() {
    let mut sv = start(
        r#"
[[program]]
name = "talker"
kind = "oneshot"
command = ["sh", "-c", "echo out1; echo err1 >&2; echo out2; printf 'no-newline'"]
"#,
    );
    assert_eq!(sv.wait(15), 0);
    let (out, err) = (sv.stdout(), sv.stderr());
    assert!(
        out.contains("talker | out1\ntalker | out2\ntalker | no-newline\n"),
        "{out}"
    );
    assert!(err.contains("talker | err1\n"), "{err}");
    assert!(!out.contains("err1"), "{out}");
}

#[test]
fn a_flood_never_blocks_the_program_when_nobody_reads() {
    let dir = tempfile::tempdir().unwrap();
    let port = testbed::free_port().unwrap();
    let config = dir.path().join("supervise.toml");
    let d = dir.path().display();
    // 20 MB of output, far beyond any pipe buffer and supervise's queue.
    std::fs::write(
        &config,
        format!(
            r#"
[health]
listen = "127.0.0.1:{port}"
[[program]]
name = "flood"
command = ["sh", "-c", "python3 -c \"import sys\nfor i in range(200000): sys.stdout.write('x' * 99 + chr(10))\"; touch {d}/done; exec sleep 60"]
"#
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    // Nobody reads supervise's stdout while the program writes.
    let done = dir.path().join("done");
    wait_for(30, "the flood to finish without a reader", || done.exists());
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        text
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let text = reader.join().unwrap();
    let log = log.join().unwrap();
    let passed = text
        .lines()
        .filter(|l| l.starts_with("flood | xxx"))
        .count();
    assert!(passed > 0 && passed < 200_000, "{passed} lines passed");
    // Counted drops are reported once there is room again, maybe several times.
    let notices: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("lines dropped"))
        .collect();
    assert!(
        !notices.is_empty(),
        "no drop notice in {} lines; last: {:?}; log:\n{log}",
        text.lines().count(),
        text.lines().last()
    );
    let mut dropped = 0;
    for notice in &notices {
        assert!(notice.starts_with("flood | [supervise: "), "{notice}");
        dropped += notice["flood | [supervise: ".len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap();
    }
    assert_eq!(passed + dropped, 200_000, "{notices:?}");
}
