//! What ftpsd refuses when every client comes from one address (as behind the
//! cluster's load balancer): `tests/protections.py` drives the clients, this
//! file the server and what is on its disk.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::process::Command;

fn assert_ok(out: &std::process::Output, server: &Ftpsd) {
    assert!(
        out.status.success() && stdout(out).lines().last() == Some("OK"),
        "scenario failed:\n{}\n{}\nserver log:\n{}",
        stdout(out),
        stderr(out),
        server.log()
    );
}

fn scenario(server: &Ftpsd, name: &str, extra: &[&str]) {
    let out = server.python_script("protections.py", name, extra);
    print!("{}", stdout(&out));
    assert_ok(&out, server);
}

#[test]
fn failures_of_one_account_lock_out_no_other() {
    let server = Ftpsd::start_with(Options {
        max_failures: 3,
        failure_delay_ms: 20,
        per_source: false,
        ..Options::default()
    });
    scenario(
        &server,
        "cross_account",
        &[
            "--failures",
            "3",
            "--other-user",
            OTHER_USER,
            "--other-password",
            OTHER_PASSWORD,
        ],
    );
    let metrics = server.metrics();
    // bob, once: the names tried once each lock nothing, and no address is counted.
    assert_metrics(&metrics, &[("ftpsd_lockouts_total", 1.0)]);
    assert!(server.log().contains("account locked out"));
}

#[test]
fn per_source_counting_locks_the_address_out() {
    let server = Ftpsd::start_with(Options {
        max_failures: 3,
        failure_delay_ms: 20,
        per_source: true,
        ..Options::default()
    });
    scenario(&server, "source_lockout", &["--failures", "3"]);
    assert!(server.log().contains("client address locked out"));
}

#[test]
fn the_delay_doubles_with_each_failure_in_a_row() {
    let server = Ftpsd::start_with(Options {
        max_failures: 6,
        failure_delay_ms: 100,
        ..Options::default()
    });
    scenario(
        &server,
        "delay_grows",
        &["--failures", "5", "--delay-ms", "100"],
    );
}

#[test]
fn password_checks_run_at_most_max_concurrent_checks_at_once() {
    // Expensive hashes, one check at a time: eight wrong passwords sent at
    // once must wait for each other's check.
    let server = Ftpsd::start_with(Options {
        max_concurrent_checks: 1,
        failure_delay_ms: 1,
        max_failures: 100,
        iterations: 400_000,
        ..Options::default()
    });
    let login = |password: String| {
        server.curl_command(&[
            "-u",
            &format!("{OTHER_USER}:{password}"),
            "--list-only",
            &format!("ftp://127.0.0.1:{}/", server.port),
        ])
    };
    let started = std::time::Instant::now();
    assert!(!run(&mut login("wrong-0".into())).status.success());
    let single = started.elapsed();
    let started = std::time::Instant::now();
    let commands: Vec<Command> = (1..=8).map(|i| login(format!("wrong-{i}"))).collect();
    let outputs = run_all_at_once(commands, std::time::Duration::from_secs(120));
    let all = started.elapsed();
    assert!(outputs.iter().all(|o| !o.status.success()));
    let queued = metric(&server.metrics(), "ftpsd_password_checks_queued_total").unwrap();
    println!(
        "one failed login: {single:?}; eight at once: {all:?}; {queued} checks waited their turn"
    );
    assert!(
        queued >= 3.0,
        "only {queued} of 8 concurrent checks waited for the one slot"
    );
    // Waiting in turn, eight cannot finish much sooner than three single ones.
    assert!(
        all >= single * 3,
        "eight checks took {all:?}, one {single:?}"
    );
}

#[test]
fn a_client_that_does_not_resume_the_session_gets_522() {
    let server = Ftpsd::start();
    std::fs::create_dir_all(server.home(USER)).unwrap();
    scenario(&server, "no_reuse_gets_522", &[]);
    assert!(server.log().contains("did not resume"));
}

#[test]
fn another_client_on_the_passive_port_gets_nothing_and_writes_nothing() {
    let server = Ftpsd::start();
    let home = server.home(USER);
    std::fs::create_dir_all(&home).unwrap();
    let kept = home.join("kept.bin");
    let digest = random_file(&kept, 2);
    scenario(&server, "intruder_download", &["--file", "kept.bin"]);
    scenario(&server, "intruder_upload", &["--file", "kept.bin"]);
    assert_eq!(sha256(&kept), digest, "the file changed");
    let names: Vec<String> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["kept.bin"], "files in the home: {names:?}");
}

#[test]
fn every_failed_data_connection_gets_a_reply() {
    let server = Ftpsd::start_with(Options {
        connect_timeout_seconds: 3,
        handshake_timeout_seconds: 2,
        ..Options::default()
    });
    std::fs::create_dir_all(server.home(USER)).unwrap();
    scenario(
        &server,
        "failed_handshake",
        &["--handshake-timeout", "2", "--connect-timeout", "3"],
    );
}

#[test]
fn a_connection_that_does_not_log_in_is_closed_at_the_deadline() {
    let server = Ftpsd::start_with(Options {
        login_timeout_seconds: 2,
        ..Options::default()
    });
    scenario(&server, "login_deadline", &["--login-timeout", "2"]);
}

#[test]
fn idle_connections_cannot_keep_users_out_and_logins_are_capped() {
    let server = Ftpsd::start_with(Options {
        max_unauthenticated: 4,
        max_sessions: 2,
        ..Options::default()
    });
    std::fs::create_dir_all(server.home(USER)).unwrap();
    scenario(
        &server,
        "unauthenticated_limit",
        &["--limit", "4", "--max-sessions", "2"],
    );
    let metrics = server.metrics();
    assert!(
        metric(&metrics, "ftpsd_sessions_refused_total").unwrap() >= 1.0,
        "{metrics}"
    );
}

/// A tmpfs of `mib` MiB mounted on a new directory; unmounted when dropped.
struct SmallVolume {
    dir: tempfile::TempDir,
}

impl SmallVolume {
    fn new(mib: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs needs root (tests/run.sh runs as root)"
        );
        Self { dir }
    }
}

impl Drop for SmallVolume {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_gets_452_and_keeps_every_file_as_it_was() {
    let volume = SmallVolume::new(4);
    let server = Ftpsd::start_with(Options {
        data_root: Some(volume.dir.path().to_owned()),
        ..Options::default()
    });
    let home = server.home(USER);
    std::fs::create_dir_all(&home).unwrap();
    let kept = home.join("kept.bin");
    let digest = random_file(&kept, 1);
    scenario(&server, "disk_full", &["--file", "kept.bin", "--mib", "8"]);
    assert_eq!(sha256(&kept), digest, "a failed overwrite changed kept.bin");
    let mut names: Vec<String> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["kept.bin"], "left behind: {names:?}");
}

#[test]
fn a_data_connection_may_resume_any_session_of_the_same_user() {
    let server = Ftpsd::start();
    std::fs::create_dir_all(server.home(USER)).unwrap();
    scenario(&server, "sibling_session", &["--file", "mine.bin"]);
    assert!(!server.log().contains("did not resume"), "{}", server.log());
}

#[test]
fn a_data_connection_resuming_another_users_session_gets_522() {
    let server = Ftpsd::start();
    let home = server.home(USER);
    std::fs::create_dir_all(&home).unwrap();
    let kept = home.join("kept.bin");
    let digest = random_file(&kept, 1);
    scenario(
        &server,
        "other_users_session",
        &[
            "--file",
            "kept.bin",
            "--other-user",
            OTHER_USER,
            "--other-password",
            OTHER_PASSWORD,
        ],
    );
    assert_eq!(sha256(&kept), digest, "the file changed");
    let names: Vec<String> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["kept.bin"], "files in the home: {names:?}");
    assert!(server.log().contains("did not resume"));
}

#[test]
fn a_download_that_did_not_all_reach_the_client_gets_no_226() {
    use std::io::{BufRead, Write};
    let server = Ftpsd::start();
    let home = server.home(USER);
    std::fs::create_dir_all(&home).unwrap();
    // Larger than what the client's side (its receive buffer cut to 4 KiB,
    // the server's send buffer at most net.ipv4.tcp_wmem's maximum) can
    // hold: the server's copy from the file to the client stalls with data
    // left. (When file bytes went through libunftp and a relay, libunftp
    // finished and sent its 226 while the relay still held data; now the
    // storage writes to the client's connection itself, and the transfer
    // cannot end before its data is out.)
    let send_buffer_max: usize = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20);
    random_file(&home.join("cut.bin"), send_buffer_max.div_ceil(1 << 20) + 1);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/protections.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(["cut_download", "--file", "cut.bin"])
        .args(["--port", &server.port.to_string(), "--cafile"])
        .arg(server.ca())
        .args(["--user", USER, "--password", PASSWORD])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line == "STOPPED" {
            break;
        }
    }
    assert!(
        seen.ends_with("STOPPED\n"),
        "the client did not get to stop reading:\n{seen}"
    );
    // The server's copy is stalled now, with data it could not send; the
    // transfer has not ended (no transfer-log line), and no reply came.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        !server.log().contains("download"),
        "the download ended while the client held data it had not read:\n{}",
        server.log()
    );
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    let mut errors = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut errors).unwrap();
    print!("{seen}");
    assert!(
        status.success() && seen.ends_with("OK\n"),
        "scenario failed:\n{seen}\n{errors}\nserver log:\n{}",
        server.log()
    );
}
