//! ftpsd driven by lftp (ftp:ssl-force, certificate verified against the test CA).
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

fn assert_success(out: &std::process::Output, server: &Ftpsd, what: &str) {
    assert!(
        out.status.success(),
        "lftp {what} failed:\n{}\n{}\nserver log:\n{}",
        stdout(out),
        stderr(out),
        server.log()
    );
}

/// Asserts that lftp's debug output (`debug 5`) shows `reply` right after `command`.
fn assert_reply(out: &std::process::Output, command: &str, reply: &str) {
    let log = stderr(out);
    let lines: Vec<&str> = log.lines().map(str::trim_end).collect();
    let at = lines
        .iter()
        .position(|l| *l == format!("---> {command}"))
        .unwrap_or_else(|| panic!("lftp did not send {command}:\n{log}"));
    assert!(
        lines
            .get(at + 1)
            .is_some_and(|l| l.starts_with(&format!("<--- {reply}"))),
        "{command} was not answered {reply}:\n{log}"
    );
}

#[test]
fn lftp_workflow_with_resume() {
    let server = Ftpsd::start();
    let local = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(local.path().join("a.bin"), &data).unwrap();
    let l = local.path().display();

    let out = server.lftp(
        USER,
        PASSWORD,
        &format!(
            "mkdir dir1; put {l}/a.bin -o dir1/a.bin; ls dir1; get dir1/a.bin -o {l}/back.bin; \
             mv dir1/a.bin dir1/b.bin; cls -1 dir1"
        ),
    );
    assert_success(&out, &server, "workflow");
    let listing = stdout(&out);
    assert!(
        listing.contains("a.bin") && listing.contains("b.bin"),
        "{listing}"
    );
    assert!(
        std::fs::read(local.path().join("back.bin")).unwrap() == data,
        "download differs"
    );
    let home = server.home(USER);
    assert!(
        std::fs::read(home.join("dir1/b.bin")).unwrap() == data,
        "upload differs"
    );

    // Resume an interrupted download: a local file holding the first part.
    std::fs::write(local.path().join("part.bin"), &data[..700_000]).unwrap();
    // Resume an interrupted upload: the server holding the first part.
    std::fs::write(home.join("up.bin"), &data[..900_000]).unwrap();
    let out = server.lftp(
        USER,
        PASSWORD,
        &format!("get -c dir1/b.bin -o {l}/part.bin; put -c {l}/a.bin -o up.bin"),
    );
    assert_success(&out, &server, "resume");
    assert!(
        std::fs::read(local.path().join("part.bin")).unwrap() == data,
        "resumed download differs"
    );
    let up = std::fs::read(home.join("up.bin")).unwrap();
    assert!(
        up == data,
        "resumed upload differs: {} of {} bytes",
        up.len(),
        data.len()
    );
    let log = server.log();
    assert!(
        log.contains("bytes=1300000"),
        "download did not resume at 700000:\n{log}"
    );
    assert!(
        log.contains("bytes=1100000"),
        "upload did not resume at 900000:\n{log}"
    );

    let out = server.lftp(
        USER,
        PASSWORD,
        "rm dir1/b.bin; rm up.bin; rmdir dir1; cls -1",
    );
    assert_success(&out, &server, "delete");
    assert_eq!(std::fs::read_dir(&home).unwrap().count(), 0);
}

#[test]
fn lftp_refusals() {
    let server = Ftpsd::start();
    let out = server.lftp(USER, "wrong-password", "ls");
    assert!(
        !out.status.success(),
        "wrong password accepted: {}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("530"), "{}", stderr(&out));

    // Without TLS the login is refused.
    let script = format!(
        "debug 5; set ftp:ssl-allow false; set net:max-retries 1; open -u {USER},{PASSWORD} ftp://localhost:{}; ls; quit",
        server.port
    );
    let out = run(std::process::Command::new("lftp").arg("-c").arg(script));
    assert!(
        !out.status.success(),
        "plaintext login accepted: {}",
        stdout(&out)
    );
    assert_reply(&out, "USER alice", "530 ");

    // TLS on the control connection only: the plaintext data connection is refused.
    let script = format!(
        "debug 5; set ssl:ca-file {}; set ftp:ssl-force true; set ftp:ssl-protect-data false; set ftp:ssl-protect-list false; \
         set net:max-retries 1; set net:timeout 10; set cmd:fail-exit true; open -u {USER},{PASSWORD} ftp://localhost:{}; ls; quit",
        server.ca().display(),
        server.port
    );
    let out = run(std::process::Command::new("lftp").arg("-c").arg(script));
    assert!(
        !out.status.success(),
        "plaintext data accepted: {}",
        stdout(&out)
    );
    assert_reply(&out, "PROT C", "536 ");
    assert_reply(&out, "PASV", "521 ");
    assert!(
        !stderr(&out).contains("<--- 150") && stdout(&out).is_empty(),
        "a transfer started: {}",
        stderr(&out)
    );
}

#[test]
fn lftp_traversal_reads_nothing_and_writes_nothing_outside_the_home() {
    let server = Ftpsd::start();
    let tree = server.traversal_tree();
    std::fs::write(tree.alice.join("movable.txt"), "mine\n").unwrap();
    let before = server.snapshot_outside_home();
    let local = tempfile::tempdir().unwrap();
    let l = local.path().display();
    std::fs::write(local.path().join("evil.txt"), "evil\n").unwrap();
    let out_abs = tree.outside.display();
    let bob_abs = tree.bob.display();
    let attempts = [
        // Reads, each into its own local file.
        format!("get ../../../etc/passwd -o {l}/r1"),
        format!("get etc_link/passwd -o {l}/r2"),
        format!("get /etc/passwd -o {l}/r3"),
        format!("get ../bob/secret.txt -o {l}/r4"),
        format!("get /../bob/secret.txt -o {l}/r5"),
        format!("get bob_abs/secret.txt -o {l}/r6"),
        format!("get out_link/outside.txt -o {l}/r7"),
        format!("get out_file_link -o {l}/r8"),
        format!("get {out_abs}/outside.txt -o {l}/r9"),
        // Writes.
        format!("put {l}/evil.txt -o ../bob/evil.txt"),
        format!("put {l}/evil.txt -o /../bob/evil.txt"),
        format!("put {l}/evil.txt -o {bob_abs}/evil.txt"),
        format!("put {l}/evil.txt -o {out_abs}/evil.txt"),
        format!("put {l}/evil.txt -o bob_abs/evil.txt"),
        format!("put {l}/evil.txt -o bob_rel/evil.txt"),
        format!("put {l}/evil.txt -o out_link/evil.txt"),
        format!("put {l}/evil.txt -o out_file_link"),
        // Directories.
        "mkdir ../escape".to_owned(),
        "mkdir /../escape".to_owned(),
        format!("mkdir {out_abs}/escape"),
        "mkdir out_link/escape".to_owned(),
        "mkdir bob_abs/escape".to_owned(),
        "mkdir bob_rel/escape".to_owned(),
        // Renames out of and into the home.
        "mv hello.txt ../bob/stolen.txt".to_owned(),
        "mv hello.txt /../bob/stolen.txt".to_owned(),
        format!("mv hello.txt {out_abs}/stolen.txt"),
        "mv hello.txt out_link/stolen.txt".to_owned(),
        "mv hello.txt bob_rel/stolen.txt".to_owned(),
        "mv ../bob/secret.txt stolen.txt".to_owned(),
        "mv bob_abs/secret.txt stolen.txt".to_owned(),
        "mv out_file_link/ stolen.txt".to_owned(),
        // Deletes.
        "rm ../bob/secret.txt".to_owned(),
        "rm bob_abs/secret.txt".to_owned(),
        "rm out_link/outside.txt".to_owned(),
    ];
    // The same kinds of command inside the home work, in the same batch.
    let allowed = [
        format!("get hello.txt -o {l}/own.txt"),
        format!("put {l}/evil.txt -o inside.txt"),
        "mkdir inside_dir".to_owned(),
        "mv movable.txt moved.txt".to_owned(),
    ];
    let commands = attempts
        .iter()
        .chain(&allowed)
        .map(|a| server.lftp_command(USER, PASSWORD, a))
        .collect();
    let outputs = run_all_at_once(commands, std::time::Duration::from_secs(90));
    let (refused, done) = outputs.split_at(attempts.len());
    for (attempt, out) in attempts.iter().zip(refused) {
        assert!(
            !out.status.success(),
            "{attempt} succeeded: {}{}",
            stdout(out),
            stderr(out)
        );
        // Refused by the server, not by a failed login or connection.
        assert!(stderr(out).contains(": 550 "), "{attempt}: {}", stderr(out));
    }
    for (command, out) in allowed.iter().zip(done) {
        assert_success(out, &server, command);
    }
    let leaked: Vec<_> = std::fs::read_dir(local.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with('r'))
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    assert!(leaked.is_empty(), "read from outside the home: {leaked:?}");
    assert_eq!(before, server.snapshot_outside_home());
    assert_eq!(
        std::fs::read_to_string(tree.alice.join("hello.txt")).unwrap(),
        "hello\n"
    );
    assert_home_after_traversal(&tree.alice);
}

#[test]
fn lftp_200_mib_round_trip_keeps_sha256() {
    let server = Ftpsd::start();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("big.bin");
    let sum = random_file(&src, 200);
    let back = local.path().join("back.bin");
    let out = server.lftp(
        USER,
        PASSWORD,
        &format!(
            "put {} -o big.bin; get big.bin -o {}",
            src.display(),
            back.display()
        ),
    );
    assert_success(&out, &server, "200 MiB round trip");
    assert_eq!(std::fs::metadata(&back).unwrap().len(), 200 << 20);
    assert_eq!(sha256(&back), sum);
    assert_eq!(sha256(&server.home(USER).join("big.bin")), sum);
}

#[test]
fn fifty_lftp_clients_at_once() {
    let server = Ftpsd::start_with(Options {
        passive_ports: 100,
        ..Options::default()
    });
    let local = tempfile::tempdir().unwrap();
    let l = local.path().display();
    let payload = |i: usize| -> Vec<u8> { (0..65_536 + i).map(|b| (b * 31 + i) as u8).collect() };
    let commands = (0..50)
        .map(|i| {
            std::fs::write(local.path().join(format!("c-{i}.bin")), payload(i)).unwrap();
            server.lftp_command(
                USER,
                PASSWORD,
                &format!(
                    "put {l}/c-{i}.bin -o c-{i}.bin; cls -1; get c-{i}.bin -o {l}/back-{i}.bin"
                ),
            )
        })
        .collect();
    let outputs = run_all_at_once(commands, std::time::Duration::from_secs(120));
    assert_each_client_round_trip(&outputs, &server, local.path(), payload, assert_success);
    let metrics = server.metrics();
    assert_metrics(
        &metrics,
        &[
            (r#"ftpsd_logins_total{result="ok"}"#, 50.0),
            (r#"ftpsd_logins_total{result="failed"}"#, 0.0),
        ],
    );
}

#[test]
/// lftp sets the times with MFMT (listed in FEAT); its `SITE CHMOD` gets
/// `502`, so the modes compared are the defaults on both sides (0644, 0755).
fn lftp_mirror_up_and_back_in_parallel_keeps_content_and_times() {
    let server = Ftpsd::start();
    let local = tempfile::tempdir().unwrap();
    let (src, back) = (local.path().join("src"), local.path().join("back"));
    sync_tree(&src);
    std::fs::create_dir(src.join("a/empty_dir")).unwrap();
    let out = server.lftp(
        USER,
        PASSWORD,
        &format!(
            "debug 5; mirror -R --parallel=4 {} up/tree; mirror --parallel=4 up/tree {}",
            src.display(),
            back.display()
        ),
    );
    assert_success(&out, &server, "mirror");
    let expected = tree(&src);
    assert_eq!(
        tree(&server.home(USER).join("up/tree")),
        expected,
        "uploaded tree"
    );
    assert_eq!(tree(&back), expected, "downloaded tree");
}
