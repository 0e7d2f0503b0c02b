//! ftpsd driven by rclone's FTP backend with its defaults (`explicit_tls`,
//! several control connections at once sharing one TLS session cache), the
//! certificate verified against the test CA.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

fn assert_success(out: &std::process::Output, server: &Ftpsd, what: &str) {
    assert!(
        out.status.success(),
        "rclone {what} failed ({}):\n{}\n{}\nserver log:\n{}",
        out.status,
        stdout(out),
        stderr(out),
        server.log()
    );
}

#[test]
fn rclone_copies_checks_moves_and_deletes_a_tree_keeping_modification_times() {
    let server = Ftpsd::start();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    sync_tree(&src);

    // Into a folder that does not exist yet.
    let out = server.rclone(&["copy", src.to_str().unwrap(), "ftpsd:new/folder"]);
    assert_success(&out, &server, "copy");
    let remote = server.home(USER).join("new/folder");
    assert_eq!(
        tree(&remote),
        tree(&src),
        "the copy on disk differs (content or mtime)"
    );

    let out = server.rclone(&[
        "check",
        "--download",
        src.to_str().unwrap(),
        "ftpsd:new/folder",
    ]);
    assert_success(&out, &server, "check --download");
    assert!(
        stderr(&out).contains("0 differences found"),
        "{}",
        stderr(&out)
    );

    // rclone reads the times back as it wrote them.
    let lsl = |target: &str| {
        let out = server.rclone(&["lsl", target]);
        assert_success(&out, &server, "lsl");
        let mut lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(lsl("ftpsd:new/folder"), lsl(src.to_str().unwrap()));

    // Move another copy up: gone locally, there on the server.
    let moving = local.path().join("moving");
    sync_tree(&moving);
    let before = tree(&moving);
    let out = server.rclone(&["move", moving.to_str().unwrap(), "ftpsd:moved"]);
    assert_success(&out, &server, "move");
    assert_eq!(tree(&server.home(USER).join("moved")), before);
    assert!(
        tree(&moving).values().all(|v| v.starts_with("dir")),
        "files left after the move: {:?}",
        tree(&moving)
    );

    let out = server.rclone(&["delete", "ftpsd:new/folder"]);
    assert_success(&out, &server, "delete");
    assert!(
        tree(&remote).values().all(|v| v.starts_with("dir")),
        "files left after delete: {:?}",
        tree(&remote)
    );
}
