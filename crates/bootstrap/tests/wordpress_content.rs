//! `bootstrap wordpress-content` on real trees in temporary directories: the
//! binary itself, as an unprivileged user when the tests run as root (as
//! php-fpm's user in the image); headers and versions checked against
//! WordPress's and PHP's own functions.
#![allow(clippy::unwrap_used)]

mod seeding;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bootstrap::wordpress::content::{header, plugin_main_file, version_compare};
use seeding::succeeded;

/// The user the binary runs as when the tests are root: `nobody`.
const NOBODY: u32 = 65534;

fn my_uid() -> u32 {
    fs::metadata("/proc/self").unwrap().uid()
}

/// The uid the binary runs as (see [`run`]).
fn runner_uid() -> u32 {
    if my_uid() == 0 { NOBODY } else { my_uid() }
}

/// Runs `bootstrap wordpress-content --bundled B --content C`, as `nobody`
/// when the tests are root: root would write anywhere, php-fpm's user does
/// not.
fn run(bundled: &Path, content: &Path) -> Output {
    let bin = env!("CARGO_BIN_EXE_bootstrap");
    let mut cmd = if my_uid() == 0 {
        let mut c = Command::new("setpriv");
        c.args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
            "--".into(),
            bin.into(),
        ]);
        c
    } else {
        Command::new(bin)
    };
    cmd.arg("wordpress-content")
        .arg("--bundled")
        .arg(bundled)
        .arg("--content")
        .arg(content)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// Runs it and returns its log (standard error); it must succeed.
fn sync(bundled: &Path, content: &Path) -> String {
    let out = run(bundled, content);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    succeeded(out);
    log
}

/// A temporary directory the unprivileged runner can enter, with a
/// world-writable `volume/` (a fresh volume from minikube's provisioner is
/// root's with mode 0777).
struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    fn new() -> Place {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let volume = dir.path().join("volume");
        fs::create_dir(&volume).unwrap();
        fs::set_permissions(&volume, fs::Permissions::from_mode(0o777)).unwrap();
        Place { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn content(&self) -> PathBuf {
        self.path("volume/wp-content")
    }
}

/// Writes `rel` under `root` (parents made) with `mode`.
fn write(root: &Path, rel: &str, bytes: impl AsRef<[u8]>, mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The versions a release bundles.
#[derive(Clone, Copy)]
struct Release {
    theme: &'static str,
    akismet: &'static str,
    hello: &'static str,
    /// What `index.php` files say.
    silence: &'static str,
}

const OLD: Release = Release {
    theme: "1.9",
    akismet: "5.3-beta2",
    hello: "1.6",
    silence: "// Silence is golden.",
};

const NEW: Release = Release {
    theme: "1.10",
    akismet: "5.3",
    hello: "1.7.2",
    silence: "// Silence is golden!",
};

/// A release's wp-content at `root`, shaped like WordPress's archive: the
/// index.php files, two themes, a single-file plugin, and plugin
/// directories whose main file is named after the directory (akismet) or
/// not (forms).
fn release(root: &Path, r: Release) {
    let index = format!("<?php\n{}\n", r.silence);
    for rel in ["index.php", "themes/index.php", "plugins/index.php"] {
        write(root, rel, &index, 0o644);
    }
    write(
        root,
        "themes/twentyx/style.css",
        format!(
            "/*\nTheme Name: Twenty X\nAuthor: the WordPress team\nVersion: {}\nRequires PHP: 7.2\n*/\nbody {{ margin: 0 }}\n",
            r.theme
        ),
        0o644,
    );
    write(
        root,
        "themes/twentyx/functions.php",
        format!("<?php\n// twentyx {}\n", r.theme),
        0o644,
    );
    write(
        root,
        "themes/twentyx/templates/index.html",
        format!("<!-- {} -->\n", r.theme),
        0o644,
    );
    write(
        root,
        "themes/twentyx/assets/fonts/x.woff2",
        [0u8, 1, 2, 255, 254, 0, 7],
        0o644,
    );
    write(
        root,
        "themes/twentyy/style.css",
        "/*\nTheme Name: Twenty Y\nVersion: 1.0\n*/\n",
        0o644,
    );
    write(
        root,
        "plugins/hello.php",
        format!(
            "<?php\n/**\n * @package Hello_Dolly\n * @version {0}\n */\n/*\nPlugin Name: Hello Dolly\nDescription: a song\nVersion: {0}\n*/\n",
            r.hello
        ),
        0o644,
    );
    write(
        root,
        "plugins/akismet/akismet.php",
        format!(
            "<?php\n/**\n * @package Akismet\n */\n/*\nPlugin Name: Akismet Anti-spam\nVersion: {0}\nRequires at least: 5.8\n*/\ndefine( 'AKISMET_VERSION', '{0}' );\n",
            r.akismet
        ),
        0o644,
    );
    write(
        root,
        "plugins/akismet/class.akismet.php",
        format!("<?php\nclass Akismet {{}} // {}\n", r.akismet),
        0o644,
    );
    write(
        root,
        "plugins/akismet/views/notice.php",
        format!("<?php // {}\n", r.akismet),
        0o644,
    );
    write(
        root,
        "plugins/akismet/bin/tool.sh",
        "#!/bin/sh\necho ok\n",
        0o755,
    );
    write(root, "plugins/akismet/LICENSE.txt", "GPL\n", 0o444);
    // A read-only directory: copied with its mode, removed when replaced.
    write(root, "plugins/akismet/sealed/data.txt", r.akismet, 0o444);
    fs::set_permissions(
        root.join("plugins/akismet/sealed"),
        fs::Permissions::from_mode(0o555),
    )
    .unwrap();
    write(
        root,
        "plugins/forms/includes.php",
        "<?php\n// Version: 0.1 of the includes, no plugin header\n",
        0o644,
    );
    write(
        root,
        "plugins/forms/plugin.php",
        "<?php\n/*\n * Plugin Name: Forms\n * Version: 2.1\n */\n",
        0o644,
    );
}

/// One node of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    /// `d`irectory, `f`ile or `l`ink.
    kind: char,
    mode: u32,
    uid: u32,
    /// A file's bytes or a link's target.
    data: Vec<u8>,
    mtime: (i64, i64),
    ino: u64,
}

/// Every node under `root` (itself as ""), by relative path.
fn tree(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Node>) {
    // Not root.join(""): that adds a slash, wrong for a file.
    let path = if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let m = fs::symlink_metadata(&path).unwrap();
    let (kind, data) = if m.is_dir() {
        ('d', Vec::new())
    } else if m.is_file() {
        ('f', fs::read(&path).unwrap())
    } else {
        (
            'l',
            fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes(),
        )
    };
    out.insert(
        rel.to_path_buf(),
        Node {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            data,
            mtime: (m.mtime(), m.mtime_nsec()),
            ino: m.ino(),
        },
    );
    if m.is_dir() {
        for e in fs::read_dir(&path).unwrap() {
            walk(root, &rel.join(e.unwrap().file_name()), out);
        }
    }
}

/// A tree without times, inodes and owners: what a copy must keep.
fn shape(t: &BTreeMap<PathBuf, Node>) -> BTreeMap<PathBuf, (char, u32, Vec<u8>)> {
    t.iter()
        .map(|(p, n)| (p.clone(), (n.kind, n.mode, n.data.clone())))
        .collect()
}

/// The part of a tree under `rel`.
fn subtree(t: &BTreeMap<PathBuf, Node>, rel: &str) -> BTreeMap<PathBuf, Node> {
    t.iter()
        .filter(|(p, _)| p.starts_with(rel))
        .map(|(p, n)| (p.clone(), n.clone()))
        .collect()
}

/// Hidden copies a run may have left.
fn leftovers(t: &BTreeMap<PathBuf, Node>) -> Vec<PathBuf> {
    t.keys()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(".bootstrap-"))
        })
        .cloned()
        .collect()
}

fn assert_item_is(content: &Path, bundled: &Path, rel: &str) {
    assert_eq!(
        shape(&tree(&content.join(rel))),
        shape(&tree(&bundled.join(rel))),
        "{rel} differs from the bundled one"
    );
}

#[test]
fn a_fresh_content_dir_gets_every_bundled_item() {
    let place = Place::new();
    let bundled = place.path("bundled");
    release(&bundled, NEW);
    // Hidden entries are not items.
    write(&bundled, "plugins/.DS_Store", "x", 0o644);
    let content = place.content();
    let log = sync(&bundled, &content);

    let got = tree(&content);
    let mut want = tree(&bundled);
    want.remove(Path::new("plugins/.DS_Store")).unwrap();
    assert_eq!(shape(&got), shape(&want));
    assert!(log.contains("hidden: ignored"), "{log}");
    assert_eq!(got[Path::new("")].mode, 0o755);
    for (path, node) in &got {
        assert_eq!(
            node.uid,
            runner_uid(),
            "{} not the runner's",
            path.display()
        );
    }
    for line in [
        "added item=index.php",
        "added item=themes/index.php",
        "added item=themes/twentyx version=1.10",
        "added item=themes/twentyy version=1.0",
        "added item=plugins/index.php",
        "added item=plugins/hello.php version=1.7.2",
        "added item=plugins/akismet version=5.3",
        "added item=plugins/forms version=2.1",
        "added=8 updated=0 kept=0",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
}

#[test]
fn debian_wordpress_wp_content_comes_in_whole() {
    // The real archive's wp-content, as Debian ships it (testbed's WordPress).
    let real = Path::new("/usr/share/wordpress/wp-content");
    assert!(
        real.join("plugins/akismet/akismet.php").exists(),
        "Debian's wordpress package is not installed"
    );
    let place = Place::new();
    let content = place.content();
    let log = sync(real, &content);
    let bundled = tree(real);
    assert_eq!(shape(&tree(&content)), shape(&bundled));
    // Every theme and plugin directory was read with a version.
    for group in ["themes", "plugins"] {
        for e in fs::read_dir(real.join(group)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                let item = format!("added item={group}/{} version=", e.file_name().display());
                let line = log.lines().find(|l| l.contains(&item)).unwrap();
                assert!(!line.ends_with("version=-"), "{line}");
            }
        }
    }
    assert!(
        sync(real, &content).contains("added=0 updated=0"),
        "second run changed something"
    );
}

#[test]
fn newer_bundled_themes_and_plugins_replace_older_ones() {
    let place = Place::new();
    let (old, new) = (place.path("old"), place.path("new"));
    release(&old, OLD);
    release(&new, NEW);
    let content = place.content();
    sync(&old, &content);
    // A file only the old theme had goes with it.
    write(&content, "themes/twentyx/old-only.php", "<?php\n", 0o644);

    let log = sync(&new, &content);
    for rel in [
        "index.php",
        "themes/index.php",
        "themes/twentyx",
        "plugins/index.php",
        "plugins/hello.php",
        "plugins/akismet",
    ] {
        assert_item_is(&content, &new, rel);
    }
    for line in [
        "updated item=themes/twentyx from=1.9 to=1.10",
        "updated item=plugins/akismet from=5.3-beta2 to=5.3",
        "updated item=plugins/hello.php from=1.6 to=1.7.2",
        "updated (bytes differed) item=index.php",
        "kept item=themes/twentyy installed=1.0 bundled=1.0",
        "kept item=plugins/forms installed=2.1 bundled=2.1",
        "added=0 updated=6 kept=2",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
    assert_eq!(leftovers(&tree(&content)), Vec::<PathBuf>::new());
}

#[test]
fn older_bundled_copies_do_not_replace_newer_installed_ones() {
    let place = Place::new();
    let (old, new) = (place.path("old"), place.path("new"));
    release(&old, OLD);
    release(&new, NEW);
    let content = place.content();
    // WordPress (or a user) updated the theme and plugins past the image's.
    sync(&new, &content);
    let before = tree(&content);

    let log = sync(&old, &content);
    let after = tree(&content);
    for rel in [
        "themes/twentyx",
        "plugins/akismet",
        "plugins/hello.php",
        "plugins/forms",
    ] {
        assert_eq!(subtree(&after, rel), subtree(&before, rel), "{rel} changed");
    }
    for line in [
        "kept item=themes/twentyx installed=1.10 bundled=1.9",
        "kept item=plugins/akismet installed=5.3 bundled=5.3-beta2",
        "kept item=plugins/hello.php installed=1.7.2 bundled=1.6",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
    // The index.php files are the bundled ones, whatever the versions.
    assert_item_is(&content, &old, "plugins/index.php");
}

#[test]
fn what_users_made_stays_byte_for_byte() {
    let place = Place::new();
    let (old, new) = (place.path("old"), place.path("new"));
    release(&old, OLD);
    release(&new, NEW);
    let content = place.content();
    sync(&old, &content);
    let photo: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    write(&content, "uploads/2024/05/photo.jpg", &photo, 0o644);
    write(&content, "uploads/.htaccess", "deny from all\n", 0o600);
    write(
        &content,
        "languages/fr_FR.mo",
        [0xde, 0x12, 0x04, 0x95],
        0o644,
    );
    write(
        &content,
        "languages/plugins/akismet-fr_FR.po",
        "msgid \"\"\n",
        0o644,
    );
    fs::create_dir_all(content.join("upgrade/tmp")).unwrap();
    write(
        &content,
        "plugins/my-plugin/my-plugin.php",
        "<?php\n/*\nPlugin Name: Mine\nVersion: 0.1\n*/\n",
        0o644,
    );
    write(
        &content,
        "plugins/my-single.php",
        "<?php /* Plugin Name: Single */\n",
        0o640,
    );
    write(
        &content,
        "themes/my-theme/style.css",
        "/*\nTheme Name: Mine\nVersion: 9\n*/\n",
        0o644,
    );
    write(&content, "object-cache.php", "<?php // drop-in\n", 0o644);
    // A bundled plugin replaced by a link to the user's own copy.
    fs::remove_dir_all(content.join("plugins/forms")).unwrap();
    std::os::unix::fs::symlink("my-plugin", content.join("plugins/forms")).unwrap();
    let users = [
        "uploads",
        "languages",
        "upgrade",
        "plugins/my-plugin",
        "plugins/my-single.php",
        "plugins/forms",
        "themes/my-theme",
        "object-cache.php",
    ];
    let before = tree(&content);

    // A run that updates every bundled item around them.
    let log = sync(&new, &content);
    assert!(log.contains("updated=6"), "{log}");
    assert!(
        log.contains("kept (a symbolic link, left alone) item=plugins/forms"),
        "{log}"
    );
    let after = tree(&content);
    for rel in users {
        let b = subtree(&before, rel);
        assert!(!b.is_empty(), "{rel}");
        assert_eq!(subtree(&after, rel), b, "{rel} changed");
    }
}

#[test]
fn a_deleted_bundled_theme_or_plugin_comes_back() {
    let place = Place::new();
    let bundled = place.path("bundled");
    release(&bundled, NEW);
    let content = place.content();
    sync(&bundled, &content);
    fs::remove_dir_all(content.join("themes/twentyx")).unwrap();
    fs::remove_file(content.join("plugins/hello.php")).unwrap();
    fs::remove_file(content.join("index.php")).unwrap();

    let log = sync(&bundled, &content);
    for rel in ["themes/twentyx", "plugins/hello.php", "index.php"] {
        assert_item_is(&content, &bundled, rel);
    }
    assert!(
        log.contains("added item=themes/twentyx version=1.10"),
        "{log}"
    );
    assert!(log.contains("added=3 updated=0 kept=5"), "{log}");
    // Even the whole plugins/ directory.
    fs::remove_dir_all(content.join("plugins")).unwrap();
    sync(&bundled, &content);
    assert_item_is(&content, &bundled, "plugins");
}

#[test]
fn a_second_run_changes_nothing() {
    let place = Place::new();
    let bundled = place.path("bundled");
    release(&bundled, NEW);
    let content = place.content();
    sync(&bundled, &content);
    let first = tree(&content);
    // Any change would show in a file's or a directory's time.
    std::thread::sleep(std::time::Duration::from_millis(20));

    let log = sync(&bundled, &content);
    assert_eq!(tree(&content), first);
    assert!(log.contains("added=0 updated=0 kept=8"), "{log}");
    assert!(
        !log.contains(": added") && !log.contains(": updated"),
        "{log}"
    );
}

#[test]
fn leftovers_of_an_interrupted_run_are_cleared() {
    let place = Place::new();
    let (old, new) = (place.path("old"), place.path("new"));
    release(&old, OLD);
    release(&new, NEW);
    let content = place.content();
    sync(&old, &content);
    // Killed while copying the new akismet, and between the two renames of
    // the theme: the old theme aside, the new one not in yet.
    write(
        &content,
        "plugins/.akismet.bootstrap-new/akismet.php",
        "<?php",
        0o644,
    );
    fs::rename(
        content.join("themes/twentyx"),
        content.join("themes/.twentyx.bootstrap-old"),
    )
    .unwrap();
    fs::create_dir(content.join("themes/.twentyx.bootstrap-new")).unwrap();
    // They were the runner's, as everything it makes.
    for rel in [
        "plugins/.akismet.bootstrap-new",
        "plugins/.akismet.bootstrap-new/akismet.php",
        "themes/.twentyx.bootstrap-new",
    ] {
        let uid = runner_uid();
        std::os::unix::fs::chown(content.join(rel), Some(uid), Some(uid)).unwrap();
    }

    let log = sync(&new, &content);
    assert_eq!(leftovers(&tree(&content)), Vec::<PathBuf>::new());
    assert_item_is(&content, &new, "themes/twentyx");
    assert_item_is(&content, &new, "plugins/akismet");
    assert!(
        log.contains("added item=themes/twentyx version=1.10"),
        "{log}"
    );
}

#[test]
fn a_failed_copy_leaves_the_old_copy_in_place() {
    let place = Place::new();
    let (old, new) = (place.path("old"), place.path("new"));
    release(&old, OLD);
    release(&new, NEW);
    let content = place.content();
    sync(&old, &content);
    let before = tree(&content);
    // The newer akismet cannot be read whole: its copy fails half-way.
    let unreadable = new.join("plugins/akismet/views/notice.php");
    fs::set_permissions(&unreadable, fs::Permissions::from_mode(0o000)).unwrap();

    let out = run(&new, &content);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let want = format!("cannot read {}: Permission denied", unreadable.display());
    assert!(err.contains(&want), "no {want:?} in:\n{err}");
    let after = tree(&content);
    assert_eq!(
        subtree(&after, "plugins/akismet"),
        subtree(&before, "plugins/akismet")
    );
    assert_eq!(leftovers(&after), Vec::<PathBuf>::new());
}

#[test]
fn an_unwritable_volume_fails_naming_the_path() {
    let place = Place::new();
    let bundled = place.path("bundled");
    release(&bundled, NEW);
    let volume = place.path("volume");
    let content = place.content();

    // The volume's root is not writable: wp-content cannot be made. (As
    // root, the runner is nobody: 0755 keeps it out; otherwise 0555.)
    let mode = if my_uid() == 0 { 0o755 } else { 0o555 };
    fs::set_permissions(&volume, fs::Permissions::from_mode(mode)).unwrap();
    let out = run(&bundled, &content);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let want = format!("cannot create {}: Permission denied", content.display());
    assert!(err.contains(&want), "no {want:?} in:\n{err}");
    assert!(err.contains("must be writable by the user"), "{err}");
    assert!(!content.exists());

    // wp-content is there, but not the runner's to write.
    fs::set_permissions(&volume, fs::Permissions::from_mode(0o777)).unwrap();
    fs::create_dir(&content).unwrap();
    fs::set_permissions(&content, fs::Permissions::from_mode(mode)).unwrap();
    let out = run(&bundled, &content);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let want = format!(
        "cannot create {}: Permission denied",
        content.join("themes").display()
    );
    assert!(err.contains(&want), "no {want:?} in:\n{err}");
    assert!(err.contains("must be writable by the user"), "{err}");
    fs::set_permissions(&content, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_missing_bundled_dir_fails_before_anything_is_written() {
    let place = Place::new();
    let missing = place.path("no-such-dir");
    let content = place.content();
    let out = run(&missing, &content);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("cannot read {}", missing.display())),
        "{err}"
    );
    assert!(!content.exists());
}

#[test]
fn a_plugin_main_file_is_found_as_wordpress_finds_it() {
    let place = Place::new();
    let root = place.path("plugins");
    // No header in the file named after the directory: the first file by
    // name that has one.
    write(&root, "x/x.php", "<?php // helpers\n", 0o644);
    write(&root, "x/a.php", "<?php // Version: 3\n", 0o644);
    write(
        &root,
        "x/b.php",
        "<?php /* Plugin Name: X\nVersion: 2 */",
        0o644,
    );
    write(
        &root,
        "x/c.php",
        "<?php /* Plugin Name: X2\nVersion: 9 */",
        0o644,
    );
    write(&root, "x/.hidden.php", "<?php /* Plugin Name: H */", 0o644);
    write(&root, "x/sub/z.php", "<?php /* Plugin Name: Z */", 0o644);
    assert_eq!(
        plugin_main_file(&root.join("x")).unwrap(),
        Some(root.join("x/b.php"))
    );
    // The file named after the directory first when it is a plugin.
    write(&root, "x/x.php", "<?php /* Plugin Name: X itself */", 0o644);
    assert_eq!(
        plugin_main_file(&root.join("x")).unwrap(),
        Some(root.join("x/x.php"))
    );
    write(&root, "y/readme.txt", "Plugin Name: not php\n", 0o644);
    assert_eq!(plugin_main_file(&root.join("y")).unwrap(), None);
}

/// PHP run on `code` with `args` as `$argv[1..]`.
fn php(code: &str, args: &[&OsStr]) -> String {
    succeeded(
        Command::new("php")
            .arg("-r")
            .arg(code)
            .arg("--")
            .args(args)
            .output()
            .unwrap(),
    )
}

#[test]
fn versions_compare_as_php_version_compare() {
    let versions = [
        "",
        "1",
        "1.0",
        "1.0.0",
        "1.9",
        "1.10",
        "1.10.1",
        "2",
        "10",
        "01",
        "5.3",
        "5.3.0",
        "5.3-beta",
        "5.3-beta1",
        "5.3beta2",
        "5.3-b1",
        "5.3-alpha",
        "5.3-a",
        "5.3-dev",
        "5.3-RC1",
        "5.3-rc2",
        "5.3RC",
        "5.3-pl1",
        "5.3-p2",
        "5.3+build",
        "5.3_1",
        "5.3-foo",
        "5.3..1",
        "1.0.",
        ".1",
        "v1.2",
        "1.2a",
        "1.2-~1",
        "#1",
        "6.8.1",
        "2024.11.05",
        "3.0 (beta)",
    ];
    let code = "foreach (array_slice($argv, 1) as $a) { foreach (array_slice($argv, 1) as $b) \
                { echo version_compare($a, $b), \"\\n\"; } }";
    let args: Vec<&OsStr> = versions.iter().map(OsStr::new).collect();
    let theirs = php(code, &args);
    let mut theirs = theirs.lines();
    for a in versions {
        for b in versions {
            let want: i8 = theirs.next().unwrap().parse().unwrap();
            let ours = version_compare(a, b) as i8;
            assert_eq!(ours, want, "version_compare({a:?}, {b:?})");
        }
    }
}

#[test]
fn headers_are_read_as_wordpress_get_file_data_reads_them() {
    let functions = "/usr/share/wordpress/wp-includes/functions.php";
    assert!(Path::new(functions).exists(), "Debian's wordpress package");
    let place = Place::new();
    let samples: &[&[u8]] = &[
        b"/*\nTheme Name: T\nVersion: 1.6\n*/\n",
        b"<?php\n/**\n * Plugin Name: Hello Dolly\n * Version: 1.7.2 */\n",
        b"<?php /* Plugin Name: One line */ // Version: 3 ?>\n",
        b"  <?PHP\t# version:   4.5   ?> trailing\n",
        b"<?php\n// Stable Version: 7\n@ Version: 8\n",
        b"Version:0\nVersion: 1\n",
        b"x\r\nVersion: 2\r\nPlugin Name:\r\n",
        b"/*\n * Plugin Name:   \n * Version: \xff\xfe9\n */",
        b"<?php\n\t * @version 1\n\t * Version: 1.2.3-beta+7\n",
        b"no header here",
    ];
    let mut long = vec![b'#'; 8190];
    long.extend_from_slice(b"\nVersion: past 8 KiB\n");
    let mut files = Vec::new();
    for (i, s) in samples.iter().copied().chain([&long[..]]).enumerate() {
        let f = place.path(&format!("h{i}.php"));
        fs::write(&f, s).unwrap();
        files.push(f);
    }
    // WordPress's own get_file_data(), outside WordPress: its one filter
    // stubbed.
    let code = format!(
        "define('ABSPATH', '/usr/share/wordpress/'); define('WPINC', 'wp-includes'); \
         define('KB_IN_BYTES', 1024); function apply_filters($t, $v) {{ return $v; }} \
         require '{functions}'; \
         foreach (array_slice($argv, 1) as $f) {{ \
           $d = get_file_data($f, ['v' => 'Version', 'n' => 'Plugin Name']); \
           echo bin2hex($d['v']), ' ', bin2hex($d['n']), \"\\n\"; }}"
    );
    let args: Vec<&OsStr> = files.iter().map(|f| f.as_os_str()).collect();
    let theirs = php(&code, &args);
    // PHP's bytes as this reads them: text, invalid UTF-8 replaced.
    let unhex = |h: &str| {
        let bytes: Vec<u8> = (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (!text.is_empty()).then_some(text)
    };
    for (f, line) in files.iter().zip(theirs.lines()) {
        let text = fs::read(f).unwrap();
        let (v, n) = line.split_once(' ').unwrap();
        assert_eq!(
            (header(&text, "Version"), header(&text, "Plugin Name")),
            (unhex(v), unhex(n)),
            "{}: {:?}",
            f.display(),
            String::from_utf8_lossy(&text)
        );
    }
    assert_eq!(theirs.lines().count(), files.len());
}
