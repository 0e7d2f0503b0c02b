//! ftpsd driven by curl (`--ssl-reqd`, certificate verified against the test CA).
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::process::Command;

fn assert_success(out: &std::process::Output, server: &Ftpsd, what: &str) {
    assert_transfers_succeeded(out, what, || server.log());
}

/// Asserts that curl's `-v` output shows `reply` as the first reply after `command`.
fn assert_reply(out: &std::process::Output, command: &str, reply: &str) {
    let log = stderr(out);
    let mut lines = log.lines().map(str::trim_end);
    assert!(
        lines.any(|l| l == format!("> {command}")),
        "curl did not send {command}:\n{log}"
    );
    let answer = lines.find(|l| l.starts_with("< ")).unwrap_or_default();
    assert!(
        answer.starts_with(&format!("< {reply}")),
        "{command} was answered {answer:?}, not {reply}:\n{log}"
    );
}

#[test]
fn curl_workflow_with_resume_and_session_reuse() {
    let server = Ftpsd::start();
    let local = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i * 13 % 253) as u8).collect();
    let a = local.path().join("a.bin");
    std::fs::write(&a, &data).unwrap();
    let url = server.url();

    let out = server.curl(&[
        "-v",
        "--ftp-create-dirs",
        "-T",
        a.to_str().unwrap(),
        &format!("{url}/dir1/a.bin"),
    ]);
    assert_success(&out, &server, "upload");
    let out = server.curl(&["-v", "--list-only", &format!("{url}/dir1/")]);
    assert_success(&out, &server, "list");
    assert_eq!(stdout(&out).trim(), "a.bin");
    let back = local.path().join("back.bin");
    let out = server.curl(&[
        "-v",
        "-o",
        back.to_str().unwrap(),
        &format!("{url}/dir1/a.bin"),
    ]);
    assert_success(&out, &server, "download");
    assert!(std::fs::read(&back).unwrap() == data, "download differs");
    // curl resumes the control connection's TLS session on the data connection.
    assert!(
        stderr(&out).contains("SSL re-using session ID"),
        "{}",
        stderr(&out)
    );

    let out = server.curl(&[
        "-Q",
        "RNFR dir1/a.bin",
        "-Q",
        "RNTO dir1/b.bin",
        "--list-only",
        &format!("{url}/dir1/"),
    ]);
    assert_success(&out, &server, "rename");
    assert_eq!(stdout(&out).trim(), "b.bin");

    // Resume a download from a partial local file, and an upload onto a partial remote file.
    let part = local.path().join("part.bin");
    std::fs::write(&part, &data[..400_000]).unwrap();
    let out = server.curl(&[
        "-C",
        "-",
        "-o",
        part.to_str().unwrap(),
        &format!("{url}/dir1/b.bin"),
    ]);
    assert_success(&out, &server, "resumed download");
    assert!(
        std::fs::read(&part).unwrap() == data,
        "resumed download differs"
    );
    let home = server.home(USER);
    std::fs::write(home.join("up.bin"), &data[..600_000]).unwrap();
    let out = server.curl(&[
        "-C",
        "-",
        "-T",
        a.to_str().unwrap(),
        &format!("{url}/up.bin"),
    ]);
    assert_success(&out, &server, "resumed upload");
    assert!(
        std::fs::read(home.join("up.bin")).unwrap() == data,
        "resumed upload differs"
    );
    let log = server.log();
    assert!(
        log.contains("bytes=1100000") && log.contains("bytes=900000"),
        "transfers did not resume:\n{log}"
    );

    let out = server.curl(&[
        "-Q",
        "DELE dir1/b.bin",
        "-Q",
        "RMD dir1",
        "-Q",
        "DELE up.bin",
        "--list-only",
        &format!("{url}/"),
    ]);
    assert_success(&out, &server, "delete");
    assert_eq!(stdout(&out).trim(), "");
    assert_eq!(std::fs::read_dir(&home).unwrap().count(), 0);
}

#[test]
fn curl_refusals() {
    let server = Ftpsd::start();
    let url = server.url();
    let ca = server.ca();
    let base = |extra: &[&str]| {
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "30", "--cacert", ca.to_str().unwrap()])
            .args(extra);
        run(&mut c)
    };
    // Wrong password: 530, curl exit 67.
    let out = base(&["--ssl-reqd", "-u", "alice:wrong", &format!("{url}/")]);
    assert_eq!(out.status.code(), Some(67), "{}", stderr(&out));
    // No TLS at all: the login is refused.
    let out = base(&[
        "-v",
        "-u",
        &format!("{USER}:{PASSWORD}"),
        &format!("{url}/"),
    ]);
    assert!(!out.status.success());
    assert_reply(&out, "USER alice", "530 ");
    assert!(!stderr(&out).contains("> PASS"), "{}", stderr(&out));
    // TLS on control only (PROT C): no data moves.
    let out = base(&[
        "--ftp-ssl-control",
        "-v",
        "-u",
        &format!("{USER}:{PASSWORD}"),
        "--list-only",
        &format!("{url}/"),
    ]);
    assert!(!out.status.success(), "plaintext data connection accepted");
    assert_reply(&out, "PROT C", "536 ");
    assert_reply(&out, "EPSV", "521 ");
    assert_reply(&out, "PASV", "521 ");
    assert!(!stderr(&out).contains("< 150"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

#[test]
fn curl_traversal_reads_nothing_and_writes_nothing_outside_the_home() {
    let server = Ftpsd::start();
    let tree = server.traversal_tree();
    std::fs::write(tree.alice.join("movable.txt"), "mine\n").unwrap();
    let before = server.snapshot_outside_home();
    let local = tempfile::tempdir().unwrap();
    let evil = local.path().join("evil.txt");
    std::fs::write(&evil, "evil\n").unwrap();
    let url = server.url();
    // curl URL paths: `%2F` first makes a path absolute; `nocwd` sends the
    // whole path in one command instead of a CWD per directory.
    let out_abs = format!("%2F{}", tree.outside.display());
    let bob_abs = format!("%2F{}", tree.bob.display());
    let read = |path: &str| vec![format!("{url}{path}")];
    let write = |path: &str| {
        vec![
            "-T".into(),
            evil.display().to_string(),
            format!("{url}{path}"),
        ]
    };
    let quote = |commands: &[&str]| {
        let mut args = Vec::new();
        for c in commands {
            args.extend(["-Q".to_owned(), (*c).to_owned()]);
        }
        args.extend(["--list-only".to_owned(), format!("{url}/")]);
        args
    };
    let out_rel = tree.outside.display().to_string();
    let mut attempts: Vec<Vec<String>> = Vec::new();
    for method in ["multicwd", "nocwd"] {
        let m = |mut v: Vec<String>| {
            v.splice(
                0..0,
                ["--path-as-is".into(), "--ftp-method".into(), method.into()],
            );
            v
        };
        attempts.extend([
            m(read("/../../../etc/passwd")),
            m(read("/%2Fetc/passwd")),
            m(read("/etc_link/passwd")),
            m(read("/../bob/secret.txt")),
            m(read("/bob_abs/secret.txt")),
            m(read("/bob_rel/secret.txt")),
            m(read("/out_link/outside.txt")),
            m(read("/out_file_link")),
            m(read(&format!("/{out_abs}/outside.txt"))),
            m(write("/../bob/evil.txt")),
            m(write(&format!("/{bob_abs}/evil.txt"))),
            m(write(&format!("/{out_abs}/evil.txt"))),
            m(write("/bob_abs/evil.txt")),
            m(write("/bob_rel/evil.txt")),
            m(write("/out_link/evil.txt")),
            m(write("/out_file_link")),
        ]);
    }
    for commands in [
        &["MKD ../escape"][..],
        &["MKD /../escape"],
        &[&format!("MKD {out_rel}/escape")],
        &["MKD out_link/escape"],
        &["MKD bob_abs/escape"],
        &["MKD bob_rel/escape"],
        &["RNFR hello.txt", "RNTO ../bob/stolen.txt"],
        &["RNFR hello.txt", "RNTO /../bob/stolen.txt"],
        &["RNFR hello.txt", &format!("RNTO {out_rel}/stolen.txt")],
        &["RNFR hello.txt", "RNTO out_link/stolen.txt"],
        &["RNFR hello.txt", "RNTO bob_rel/stolen.txt"],
        &["RNFR ../bob/secret.txt", "RNTO stolen.txt"],
        &["RNFR bob_abs/secret.txt", "RNTO stolen.txt"],
        &["DELE ../bob/secret.txt"],
        &["DELE bob_abs/secret.txt"],
        &["DELE out_link/outside.txt"],
        &["RMD ../bob"],
    ] {
        attempts.push(quote(commands));
    }
    // The same kinds of command inside the home work, in the same batch.
    let allowed = [
        read("/hello.txt"),
        write("/inside.txt"),
        quote(&["MKD inside_dir"]),
        quote(&["RNFR movable.txt", "RNTO moved.txt"]),
    ];
    let commands = attempts
        .iter()
        .chain(&allowed)
        .map(|args| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            server.curl_command(&args)
        })
        .collect();
    let outputs = run_all_at_once(commands, std::time::Duration::from_secs(90));
    let (refused, done) = outputs.split_at(attempts.len());
    for (attempt, out) in attempts.iter().zip(refused) {
        assert!(
            !out.status.success() && stdout(out).is_empty(),
            "{attempt:?}: {} {}{}",
            out.status,
            stdout(out),
            stderr(out)
        );
    }
    for (args, out) in allowed.iter().zip(done) {
        assert_success(out, &server, &format!("{args:?}"));
    }
    assert_eq!(stdout(&done[0]), "hello\n");
    assert_eq!(before, server.snapshot_outside_home());
    assert_home_after_traversal(&tree.alice);
}

#[test]
fn curl_200_mib_round_trip_keeps_sha256() {
    let server = Ftpsd::start();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("big.bin");
    let sum = random_file(&src, 200);
    let url = format!("{}/big.bin", server.url());
    let out = server.curl(&["-T", src.to_str().unwrap(), &url]);
    assert_success(&out, &server, "upload");
    let back = local.path().join("back.bin");
    let out = server.curl(&["-o", back.to_str().unwrap(), &url]);
    assert_success(&out, &server, "download");
    assert_eq!(std::fs::metadata(&back).unwrap().len(), 200 << 20);
    assert_eq!(sha256(&back), sum);
    assert_eq!(sha256(&server.home(USER).join("big.bin")), sum);
}

#[test]
fn fifty_curl_clients_at_once() {
    let server = Ftpsd::start_with(Options {
        passive_ports: 100,
        ..Options::default()
    });
    let local = tempfile::tempdir().unwrap();
    let url = server.url();
    let payload = |i: usize| -> Vec<u8> { (0..65_536 + i).map(|b| (b * 17 + i) as u8).collect() };
    let commands = (0..50)
        .map(|i| {
            let up = local.path().join(format!("c-{i}.bin"));
            std::fs::write(&up, payload(i)).unwrap();
            let back = local.path().join(format!("back-{i}.bin"));
            let options = server.curl_options();
            // One curl process: upload, list, download (over one control connection).
            let mut args: Vec<String> = vec![
                "-T".into(),
                up.display().to_string(),
                format!("{url}/c-{i}.bin"),
                "--next".into(),
            ];
            args.extend(options.iter().cloned());
            args.extend(["--list-only".into(), format!("{url}/"), "--next".into()]);
            args.extend(options.iter().cloned());
            args.extend([
                "-o".into(),
                back.display().to_string(),
                format!("{url}/c-{i}.bin"),
            ]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            server.curl_command(&args)
        })
        .collect();
    let outputs = run_all_at_once(commands, std::time::Duration::from_secs(120));
    assert_each_client_round_trip(&outputs, &server, local.path(), payload, assert_success);
    let metrics = server.metrics();
    assert!(
        metric(&metrics, r#"ftpsd_logins_total{result="ok"}"#).unwrap() >= 50.0,
        "{metrics}"
    );
    assert_metrics(&metrics, &[(r#"ftpsd_logins_total{result="failed"}"#, 0.0)]);
}

#[test]
fn curl_creates_nested_new_directories_for_uploads() {
    let server = Ftpsd::start();
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("f.txt");
    std::fs::write(&file, "nested\n").unwrap();
    let url = server.url();
    let home = server.home(USER);
    // curl's default `--ftp-method multicwd`: a CWD per level, MKD and CWD
    // again where one fails. (Its `singlecwd` makes the whole path with one
    // MKD, which needs a recursive MKD that vsftpd and ProFTPD lack too;
    // `nocwd` creates nothing.)
    let out = server.curl(&[
        "-v",
        "--ftp-create-dirs",
        "-T",
        file.to_str().unwrap(),
        &format!("{url}/m1/m2/m3/f.txt"),
    ]);
    assert_success(&out, &server, "upload");
    assert_eq!(
        std::fs::read_to_string(home.join("m1/m2/m3/f.txt")).unwrap(),
        "nested\n"
    );
    // A second file into a new directory under one made before, on the
    // same connection.
    let mut args = vec![
        "--ftp-create-dirs".to_owned(),
        "-T".to_owned(),
        file.to_str().unwrap().to_owned(),
        format!("{url}/m1/m2/new/g.txt"),
        "--next".to_owned(),
    ];
    args.extend(server.curl_options());
    args.extend([
        "--ftp-create-dirs".to_owned(),
        "-T".to_owned(),
        file.to_str().unwrap().to_owned(),
        format!("{url}/m1/other/deeper/h.txt"),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = server.curl(&args);
    assert_success(&out, &server, "two uploads");
    for name in ["m1/m2/new/g.txt", "m1/other/deeper/h.txt"] {
        assert_eq!(
            std::fs::read_to_string(home.join(name)).unwrap(),
            "nested\n"
        );
    }
}
