//! Templates, bad configs and `check-config`, through the real binary.
#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use support::*;

/// `supervise check-config FLAGS CONFIG` with extra environment, run to its end.
fn check_config(flags: &[&str], config: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .arg("check-config")
        .args(flags)
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn templates_are_rendered_from_env_and_files_before_programs_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    std::fs::write(
        d.join("app.conf.in"),
        "greeting = ${GREETING}\npassword = ${DB_PASSWORD}\nliteral = $${GREETING} $host\n",
    )
    .unwrap();
    std::fs::write(d.join("secret"), "s3cret\n").unwrap();
    let secret = d.join("secret");
    let mut sv = start_in(
        dir,
        r#"
[[template]]
source = "{dir}/app.conf.in"
target = "{dir}/etc/app.conf"
mode = "0600"

[[program]]
name = "reader"
kind = "oneshot"
command = ["cp", "{dir}/etc/app.conf", "{dir}/seen-by-program"]
"#,
        &[
            ("GREETING", "hello"),
            ("DB_PASSWORD_FILE", secret.to_str().unwrap()),
            ("DB_PASSWORD", "not this one"),
        ],
    );
    assert_eq!(sv.wait(15), 0, "{}", sv.stderr());
    let expected = "greeting = hello\npassword = s3cret\nliteral = ${GREETING} $host\n";
    let target = sv.path("etc/app.conf");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), expected);
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(sv.path("seen-by-program")).unwrap(),
        expected
    );
}

#[test]
fn a_missing_variable_names_file_line_and_variable_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.in"),
        "a = 1\nb = ${SUPERVISE_TEST_NOPE}\n",
    )
    .unwrap();
    let source = dir.path().join("t.in");
    let mut sv = start_in(
        dir,
        r#"
[[template]]
source = "{dir}/t.in"
target = "{dir}/t.out"

[[program]]
name = "marker"
command = ["touch", "{dir}/started"]
"#,
        &[],
    );
    assert_eq!(sv.wait(15), 2);
    let err = sv.stderr();
    assert!(
        err.contains(&format!(
            "template {} line 2: variable SUPERVISE_TEST_NOPE has no value",
            source.display()
        )),
        "{err}"
    );
    assert!(!sv.path("started").exists());
    assert!(!sv.path("t.out").exists(), "nothing is written either");
}

/// Each bad config: supervise exits 2 with `message`, starts nothing, and
/// `check-config` rejects it the same way.
fn rejected(body: &str, message: &str) {
    let sv = rejected_at_start(body, message);
    let out = check_config(&[], &sv.path("supervise.toml"), &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(message), "{err}");
}

fn rejected_at_start(body: &str, message: &str) -> Sv {
    let mut sv = start(&format!(
        "{body}\n[[program]]\nname = \"marker\"\ncommand = [\"touch\", \"{{dir}}/started\"]\n"
    ));
    assert_eq!(sv.wait(15), 2, "{}", sv.stderr());
    let err = sv.stderr();
    assert!(err.contains(message), "expected {message:?} in:\n{err}");
    assert!(err.contains("supervise.toml"), "the file is named:\n{err}");
    assert!(!sv.path("started").exists(), "a program was started");
    assert!(
        sv.get("/healthz").is_none(),
        "the health endpoint must not be up"
    );
    sv
}

#[test]
fn an_unknown_field_is_rejected() {
    rejected(
        "[[program]]\nname = \"a\"\ncommand = [\"true\"]\ncolour = \"red\"\n",
        "unknown field `colour`",
    );
    rejected("[stop]\ngrace = 3\n", "unknown field `grace`");
}

#[test]
fn a_missing_command_is_rejected() {
    rejected("[[program]]\nname = \"a\"\n", "missing field `command`");
    rejected(
        "[[program]]\nname = \"a\"\ncommand = []\n",
        "program \"a\": command is empty",
    );
}

#[test]
fn a_cycle_in_after_is_rejected() {
    rejected(
        "[[program]]\nname = \"a\"\ncommand = [\"true\"]\nafter = [\"c\"]\n\
         [[program]]\nname = \"b\"\ncommand = [\"true\"]\nafter = [\"a\"]\n\
         [[program]]\nname = \"c\"\ncommand = [\"true\"]\nafter = [\"b\"]\n",
        "cycle in `after`: a -> c -> b -> a",
    );
}

#[test]
fn a_duplicate_name_is_rejected() {
    rejected(
        "[[program]]\nname = \"marker\"\ncommand = [\"true\"]\n",
        "duplicate program name \"marker\"",
    );
}

#[test]
fn an_unknown_after_target_is_rejected() {
    rejected(
        "[[program]]\nname = \"a\"\ncommand = [\"true\"]\nafter = [\"nginx\"]\n",
        "program \"a\": `after` names \"nginx\", which is not a program",
    );
}

#[test]
fn an_unreadable_template_is_rejected() {
    let mut sv = start(
        "[[template]]\nsource = \"{dir}/missing.in\"\ntarget = \"{dir}/out\"\n\
         [[program]]\nname = \"marker\"\ncommand = [\"touch\", \"{dir}/started\"]\n",
    );
    assert_eq!(sv.wait(15), 2);
    let err = sv.stderr();
    assert!(err.contains("missing.in: cannot read"), "{err}");
    assert!(!sv.path("started").exists());
}

#[test]
fn an_unknown_user_is_rejected_at_start() {
    let sv = rejected_at_start(
        "[[program]]\nname = \"a\"\ncommand = [\"true\"]\nuser = \"no-such-user-here\"\n",
        "program \"a\": user \"no-such-user-here\" does not exist",
    );
    // Users exist in the image, not necessarily where check-config runs.
    let out = check_config(&[], &sv.path("supervise.toml"), &[]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_bad_health_address_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("s.toml");
    std::fs::write(
        &config,
        "[health]\nlisten = \"nowhere\"\n[[program]]\nname = \"a\"\ncommand = [\"true\"]\n",
    )
    .unwrap();
    let out = check_config(&[], &config, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid socket address"));
}

#[test]
fn check_config_validates_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("s.toml");
    let marker = dir.path().join("started");
    std::fs::write(
        &config,
        format!(
            "[[template]]\nsource = \"{d}/t.in\"\ntarget = \"{d}/t.out\"\n\
             [[program]]\nname = \"web\"\ncommand = [\"touch\", \"{m}\"]\nafter = [\"init\"]\n\
             [[program]]\nname = \"init\"\nkind = \"oneshot\"\ncommand = [\"touch\", \"{m}\"]\n",
            d = dir.path().display(),
            m = marker.display()
        ),
    )
    .unwrap();
    let out = check_config(&[], &config, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ok: 2 program(s), start order init, web; 1 template(s)"),
        "{text}"
    );
    assert!(!marker.exists());

    // --render also needs the templates and their variables.
    let out = check_config(&["--render"], &config, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("t.in: cannot read"));
    std::fs::write(dir.path().join("t.in"), "x = ${SUPERVISE_TEST_X}\n").unwrap();
    let out = check_config(&["--render"], &config, &[("SUPERVISE_TEST_X", "1")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !dir.path().join("t.out").exists(),
        "check-config writes nothing"
    );
    assert!(!marker.exists());
}

#[test]
fn the_config_comes_from_supervise_config_when_no_flag_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("s.toml");
    let marker = dir.path().join("ran");
    std::fs::write(
        &config,
        format!(
            "[health]\nlisten = \"127.0.0.1:{}\"\n[[program]]\nname = \"a\"\nkind = \"oneshot\"\ncommand = [\"touch\", \"{}\"]\n",
            testbed::free_port().unwrap(),
            marker.display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .env("SUPERVISE_CONFIG", &config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(marker.exists());
}

#[test]
fn a_program_runs_as_its_user_with_the_users_groups() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "switching users needs root: run the suite as root, as tests/run.sh does"
    );
    let user = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut sv = start_in(
        dir,
        r#"
[[program]]
name = "id"
kind = "oneshot"
user = "nobody"
directory = "/"
env = { EXTRA = "yes" }
command = ["sh", "-c", "echo $(id -u) $(id -g) $(id -G) $PWD $EXTRA $HOME > {dir}/id"]
"#,
        &[],
    );
    assert_eq!(sv.wait(15), 0, "{}", sv.stderr());
    let groups = nix::unistd::getgrouplist(c"nobody", user.gid).unwrap();
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let expected = format!(
        "{} {} {} / yes {}\n",
        user.uid,
        user.gid,
        groups.join(" "),
        user.dir.display()
    );
    assert_eq!(std::fs::read_to_string(sv.path("id")).unwrap(), expected);
}

#[test]
fn a_verbatim_template_is_a_private_copy_for_its_owner() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "giving a file to another user needs root: run the suite as root, as tests/run.sh does"
    );
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    let dir = tempfile::tempdir().unwrap();
    // Not a template: a placeholder, a `$${` and bytes that are not UTF-8.
    let secret: Vec<u8> = [b"pass${WORD}$${x}\n".as_slice(), &[0xff, 0x00, 0x80]].concat();
    std::fs::write(dir.path().join("secret"), &secret).unwrap();
    let mut sv = start_in(
        dir,
        r#"
[[template]]
source = "{dir}/secret"
target = "{dir}/copies/collect/secret"
mode = "0400"
owner = "nobody"
verbatim = true

[[program]]
name = "done"
kind = "oneshot"
command = ["true"]
"#,
        &[],
    );
    assert_eq!(sv.wait(15), 0, "{}", sv.stderr());
    let copy = sv.path("copies/collect/secret");
    let meta = std::fs::metadata(&copy).unwrap();
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(meta.uid(), nobody.uid.as_raw());
    assert_eq!(meta.gid(), nobody.gid.as_raw());
    assert_eq!(meta.mode() & 0o7777, 0o400);
    assert_eq!(std::fs::read(&copy).unwrap(), secret);
}

#[test]
fn an_unknown_template_owner_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "s").unwrap();
    let mut sv = start_in(
        dir,
        r#"
[[template]]
source = "{dir}/secret"
target = "{dir}/copy"
owner = "no-such-user-here"
verbatim = true

[[program]]
name = "never"
command = ["sleep", "60"]
"#,
        &[],
    );
    assert_eq!(sv.wait(15), 2, "{}", sv.stderr());
    assert!(
        sv.stderr()
            .contains("owner \"no-such-user-here\": no such user"),
        "{}",
        sv.stderr()
    );
    assert!(!sv.path("copy").exists(), "a target was written");
}
