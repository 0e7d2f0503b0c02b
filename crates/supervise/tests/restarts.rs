//! The restarts file: supervise counts its own starts in a file that
//! outlives each run (the container) but belongs to one pod.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use nix::sys::signal::Signal;
use support::*;

/// The restarts reported top-level and for every program.
fn reported(sv: &Sv) -> Vec<u64> {
    sv.wait_health();
    let (code, body) = sv.get("/healthz").unwrap();
    assert_eq!(code, 200, "{body}");
    let mut all = vec![body["restarts"].as_u64().unwrap()];
    for p in body["programs"].as_array().unwrap() {
        all.push(p["restarts"].as_u64().unwrap());
    }
    all
}

#[test]
fn each_run_after_a_service_exit_reports_one_more_restart() {
    // The pod: outlives every run of supervise, as an emptyDir does.
    let pod = tempfile::tempdir().unwrap();
    let file = pod.path().join("restarts");
    let env = [("SUPERVISE_RESTARTS_FILE", file.to_str().unwrap())];
    for run in 0..3u64 {
        // The app copies the file as it starts: the new count is already there.
        let mut sv = start_in(
            tempfile::tempdir().unwrap(),
            &r#"
[[program]]
name = "idle"
command = ["sleep", "60"]

[[program]]
name = "app"
command = ["sh", "-c", "cp {file} {dir}/seen; while [ ! -e {dir}/go ]; do sleep 0.02; done; exit 3"]
"#
            .replace("{file}", file.to_str().unwrap()),
            &env,
        );
        assert_eq!(reported(&sv), vec![run; 3], "run {run}");
        let seen = sv.path("seen");
        wait_for(10, "app started", || seen.exists());
        assert_eq!(
            std::fs::read_to_string(&seen).unwrap(),
            format!("{}\n", run + 1)
        );
        std::fs::write(sv.path("go"), "").unwrap();
        assert_eq!(sv.wait(15), 1);
        let log = sv.stderr();
        assert!(
            log.contains(&format!(
                "{}: {run} earlier start(s) in this pod",
                file.display()
            )),
            "{log}"
        );
        assert!(log.contains(") exited with status 3 after "), "{log}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "3\n");
    // Nothing but the count is left beside it.
    assert_eq!(std::fs::read_dir(pod.path()).unwrap().count(), 1);
}

#[test]
fn the_config_names_the_file_and_the_environment_overrides_it() {
    let pod = tempfile::tempdir().unwrap();
    let configured = pod.path().join("configured");
    let overriding = pod.path().join("overriding");
    std::fs::write(&configured, "2\n").unwrap();
    std::fs::write(&overriding, "7\n").unwrap();
    // Keys right after the `[health]` header the support code writes belong to it.
    let body = format!(
        "restarts_file = \"{}\"\n\n[[program]]\nname = \"a\"\ncommand = [\"sleep\", \"60\"]\n",
        configured.display()
    );

    // An empty variable counts as unset.
    let mut sv = start_in(
        tempfile::tempdir().unwrap(),
        &body,
        &[("SUPERVISE_RESTARTS_FILE", "")],
    );
    assert_eq!(reported(&sv), vec![2, 2]);
    sv.signal(Signal::SIGTERM);
    assert_eq!(sv.wait(15), 0);
    assert_eq!(std::fs::read_to_string(&configured).unwrap(), "3\n");

    let mut sv = start_in(
        tempfile::tempdir().unwrap(),
        &body,
        &[("SUPERVISE_RESTARTS_FILE", overriding.to_str().unwrap())],
    );
    assert_eq!(reported(&sv), vec![7, 7]);
    sv.signal(Signal::SIGTERM);
    assert_eq!(sv.wait(15), 0);
    assert_eq!(std::fs::read_to_string(&overriding).unwrap(), "8\n");
    assert_eq!(std::fs::read_to_string(&configured).unwrap(), "3\n");
}

#[test]
fn a_garbled_file_is_a_warning_and_counting_starts_again() {
    let pod = tempfile::tempdir().unwrap();
    let file = pod.path().join("restarts");
    std::fs::write(&file, "banana\n").unwrap();
    let mut sv = start_in(
        tempfile::tempdir().unwrap(),
        "[[program]]\nname = \"a\"\ncommand = [\"sh\", \"-c\", \"touch {dir}/started; exec sleep 60\"]\n",
        &[("SUPERVISE_RESTARTS_FILE", file.to_str().unwrap())],
    );
    assert_eq!(reported(&sv), vec![0, 0]);
    let started = sv.path("started");
    wait_for(10, "the program started", || started.exists());
    let log = sv.stderr();
    assert!(
        log.contains(&format!(
            "{}: restarts file holds \"banana\\n\", not a count; counting restarts from 0 again",
            file.display()
        )),
        "{log}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "1\n");
    sv.signal(Signal::SIGTERM);
    assert_eq!(sv.wait(15), 0);
}

#[test]
fn an_unwritable_file_is_a_warning_and_programs_still_start() {
    // The volume is not mounted: its directory does not exist.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("absent").join("restarts");
    let mut sv = start_in(
        dir,
        "[[program]]\nname = \"a\"\ncommand = [\"sh\", \"-c\", \"touch {dir}/started; exec sleep 60\"]\n",
        &[("SUPERVISE_RESTARTS_FILE", file.to_str().unwrap())],
    );
    assert_eq!(reported(&sv), vec![0, 0]);
    let started = sv.path("started");
    wait_for(10, "the program started", || started.exists());
    sv.wait_log(&format!(
        "{}: cannot record this start in the restarts file: ",
        file.display()
    ));
    assert!(!sv.path("absent").exists());
    sv.signal(Signal::SIGTERM);
    assert_eq!(sv.wait(15), 0);
}

#[test]
fn a_relative_path_fails_at_start_and_in_check_config() {
    let mut sv = start_in(
        tempfile::tempdir().unwrap(),
        "[[program]]\nname = \"a\"\ncommand = [\"touch\", \"{dir}/started\"]\n",
        &[("SUPERVISE_RESTARTS_FILE", "restarts")],
    );
    assert_eq!(sv.wait(15), 2);
    assert!(
        sv.stderr().contains(
            "$SUPERVISE_RESTARTS_FILE = \"restarts\": the restarts file must be an absolute path"
        ),
        "{}",
        sv.stderr()
    );
    assert!(!sv.path("started").exists());
    assert!(!sv.path("restarts").exists());

    let config = sv.path("relative.toml");
    std::fs::write(
        &config,
        "[health]\nrestarts_file = \"restarts\"\n[[program]]\nname = \"a\"\ncommand = [\"true\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("[health] restarts_file \"restarts\" must be an absolute path"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
