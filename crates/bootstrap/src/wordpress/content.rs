//! `bootstrap wordpress-content`: the themes and plugins the image bundles,
//! brought into WordPress's content directory on the volume.
//!
//! The wordpress image keeps WordPress's own files in the image
//! (`/usr/share/webapps/wordpress`), its `wp-content` a link to
//! `/var/lib/wordpress/wp-content` on the PersistentVolumeClaim, and the
//! themes and plugins of the release (the archive's own `wp-content`) in
//! `/usr/share/webapps/wordpress-content`. This runs at every container
//! start, as a `oneshot` before php-fpm and as php-fpm's user (`php`), so
//! that what it creates is WordPress's to write: uploads, installs and
//! updates of plugins and themes.
//!
//! 1. Creates the content directory (`--content`) and its `themes/` and
//!    `plugins/` when missing, mode 0755. Its parent (the volume's mount
//!    point) is not created: without the volume this fails instead of
//!    writing into the container's own filesystem. The user must be able to
//!    write there (minikube's provisioner makes a fresh volume root's, 0777).
//! 2. Removes what an interrupted run left: the hidden siblings
//!    `.<name>.bootstrap-new` and `.<name>.bootstrap-old` at the top, in
//!    `themes/` and in `plugins/` (only this program makes such names).
//! 3. Brings in every bundled item (`--bundled`): each entry of `themes/`
//!    and `plugins/` (a directory, or a single-file plugin such as
//!    `hello.php`, or `index.php`) and each file at the top (`index.php`).
//!    Hidden entries and anything else at the top are ignored (with a
//!    warning). An item
//!    - missing from the content directory is copied (recursively: files,
//!      directories and symbolic links, permission bits kept, owned by the
//!      user running this). So a bundled theme or plugin a user deleted
//!      comes back at the next start;
//!    - present is replaced only when the bundled copy is newer: a theme by
//!      the `Version:` header of its `style.css`, a plugin directory by the
//!      `Version:` of its main file (the `.php` file at its top whose header
//!      has `Plugin Name:`, as WordPress finds it; `<dir>/<dir>.php` first,
//!      then by name), a single-file plugin by its own header; headers read
//!      as WordPress's `get_file_data()` reads them ([`header`]). Versions
//!      are compared by PHP's `version_compare()`, which WordPress's updater
//!      uses ([`version_compare`]): dotted numbers numerically (`1.10` >
//!      `1.9`), `5.3-beta` < `5.3-RC1` < `5.3`. A present copy without a
//!      readable version is older than any bundled one (a half-deleted
//!      plugin is repaired); an equal version is kept, even if its files
//!      were edited. Other files (the `index.php` files) are replaced when
//!      their bytes differ;
//!    - that is a symbolic link is left alone (a user's own copy).
//!
//!    So a newer image updates what it bundles, and a plugin or theme a user
//!    or WordPress updated past the image's version stays. Nothing else is
//!    ever touched: `uploads/`, `languages/`, `upgrade/`, plugins and themes
//!    users installed, files users added at the top (drop-ins).
//! 4. Each copy is made into a hidden sibling (`.<name>.bootstrap-new`),
//!    written to disk (fsync of every file and directory) and renamed into
//!    place: an added item appears whole or not at all, even across a crash
//!    of the node. A replaced file is renamed over the old one (atomic); a
//!    replaced directory is swapped by two renames (the old one aside as
//!    `.<name>.bootstrap-old`, the new one in, then the old one deleted).
//!    Nothing serves WordPress in the pod yet (php-fpm starts after this)
//!    and the Deployment's `Recreate` strategy keeps other pods off the
//!    volume, so no request sees the instant between the two. A failure
//!    before the swap leaves the old copy in place and removes the new one;
//!    a run killed between the two renames leaves the item missing, and the
//!    next run adds it.
//!
//! One log line per item (`added`, `updated` with both versions, `kept`)
//! and a summary. Any I/O error stops the run, non-zero, naming the path; on
//! the volume, a permission error also says that the volume must be
//! writable by the user this runs as. A second run changes nothing (no
//! write at all when every item is in place).

use std::cmp::Ordering;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Error;

/// Where the image keeps the release's own `wp-content`.
pub const DEFAULT_BUNDLED: &str = "/usr/share/webapps/wordpress-content";
/// WordPress's content directory on the volume.
pub const DEFAULT_CONTENT: &str = "/var/lib/wordpress/wp-content";

/// Suffix of the hidden sibling a copy is made into.
const STAGED: &str = ".bootstrap-new";
/// Suffix of the hidden sibling a replaced directory is moved to.
const REPLACED: &str = ".bootstrap-old";

/// Mode of the directories this creates.
const DIR_MODE: u32 = 0o755;

/// How many bytes of a file WordPress reads for its header (8 KiB).
const HEADER_BYTES: u64 = 8 * 1024;

/// What a bundled item is, which says how two copies are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `themes/<dir>`: `Version:` of `<dir>/style.css`.
    Theme,
    /// `plugins/<dir>`: `Version:` of its main file.
    PluginDir,
    /// `plugins/<file>.php`: its own `Version:`.
    PluginFile,
    /// Any other file (`index.php`): its bytes.
    File,
}

/// One bundled item, by its path relative to both directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub path: PathBuf,
    pub kind: Kind,
}

/// What a run did to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Added,
    Updated,
    Kept,
    /// A symbolic link in the content directory: not compared, left alone.
    Link,
}

/// One item's outcome, with the versions compared (`None` for plain files
/// and for a copy without a readable version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub item: Item,
    pub action: Action,
    pub bundled: Option<String>,
    /// What the content directory held before the run.
    pub installed: Option<String>,
}

/// The two directories.
#[derive(Debug, Clone)]
pub struct Content {
    /// The release's `wp-content`, in the image (read only).
    pub bundled: PathBuf,
    /// WordPress's content directory on the volume.
    pub content: PathBuf,
}

/// Brings every bundled item into the content directory (see the module
/// docs); logs and returns one outcome per item, in the order done.
pub fn sync(c: &Content) -> Result<Vec<Outcome>, Error> {
    // What is bundled is read first: a missing or unreadable image directory
    // fails before anything is written.
    let items = bundled_items(&c.bundled)?;
    ensure_dir(&c.content)?;
    ensure_dir(&c.content.join("themes"))?;
    ensure_dir(&c.content.join("plugins"))?;
    for dir in [
        c.content.clone(),
        c.content.join("themes"),
        c.content.join("plugins"),
    ] {
        remove_leftovers(&dir)?;
    }
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        let outcome = bring(c, item)?;
        log(&outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn log(o: &Outcome) {
    let item = o.item.path.display();
    let v = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    match (&o.action, o.item.kind) {
        (Action::Added, Kind::File) => tracing::info!(%item, "added"),
        (Action::Added, _) => tracing::info!(%item, version = %v(&o.bundled), "added"),
        (Action::Updated, Kind::File) => tracing::info!(%item, "updated (bytes differed)"),
        (Action::Updated, _) => {
            tracing::info!(%item, from = %v(&o.installed), to = %v(&o.bundled), "updated")
        }
        (Action::Link, _) => tracing::info!(%item, "kept (a symbolic link, left alone)"),
        (Action::Kept, Kind::File) => tracing::info!(%item, "kept (same bytes)"),
        (Action::Kept, _) => tracing::info!(
            %item,
            installed = %v(&o.installed),
            bundled = %v(&o.bundled),
            "kept"
        ),
    }
}

/// The items of the bundled directory, sorted by path.
pub fn bundled_items(bundled: &Path) -> Result<Vec<Item>, Error> {
    let mut items = Vec::new();
    for name in entries(bundled, Side::Bundled)? {
        let path = bundled.join(&name);
        if hidden(&name) {
            tracing::warn!(path = %path.display(), "hidden: ignored");
            continue;
        }
        let meta = read_meta(&path)?;
        let group = name.to_str().filter(|n| *n == "themes" || *n == "plugins");
        match group {
            Some(group) if meta.is_dir() => {
                for sub in entries(&path, Side::Bundled)? {
                    let sub_path = path.join(&sub);
                    if hidden(&sub) {
                        tracing::warn!(path = %sub_path.display(), "hidden: ignored");
                        continue;
                    }
                    let m = read_meta(&sub_path)?;
                    let kind = if m.is_dir() {
                        if group == "themes" {
                            Kind::Theme
                        } else {
                            Kind::PluginDir
                        }
                    } else if m.is_file() {
                        let php = Path::new(&sub).extension() == Some(OsStr::new("php"));
                        if group == "plugins" && php && sub != "index.php" {
                            Kind::PluginFile
                        } else {
                            Kind::File
                        }
                    } else {
                        tracing::warn!(path = %sub_path.display(), "not a file or directory: ignored");
                        continue;
                    };
                    items.push(Item {
                        path: Path::new(&name).join(&sub),
                        kind,
                    });
                }
            }
            _ if meta.is_file() => items.push(Item {
                path: PathBuf::from(&name),
                kind: Kind::File,
            }),
            _ => tracing::warn!(
                path = %path.display(),
                "neither themes/, plugins/ nor a file: ignored"
            ),
        }
    }
    Ok(items)
}

/// Names starting with a dot: never items (the staged and replaced copies
/// are hidden, and WordPress skips such plugins).
fn hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b".")
}

/// Brings one item in.
fn bring(c: &Content, item: Item) -> Result<Outcome, Error> {
    let src = c.bundled.join(&item.path);
    let dst = c.content.join(&item.path);
    let staged = sibling(&dst, STAGED);
    let bundled = version(item.kind, &src, Side::Bundled)?;
    let outcome = |action, installed| Outcome {
        item: item.clone(),
        action,
        bundled: bundled.clone(),
        installed,
    };
    let meta = match fs::symlink_metadata(&dst) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            stage(&src, &staged)?;
            rename(&staged, &dst)?;
            sync_parent(&dst)?;
            return Ok(outcome(Action::Added, None));
        }
        Err(e) => return Err(content_error("inspect", &dst, e)),
    };
    if meta.file_type().is_symlink() {
        return Ok(outcome(Action::Link, None));
    }
    let (newer, installed) = match item.kind {
        Kind::File => (!meta.is_file() || !same_bytes(&src, &dst)?, None),
        kind => {
            let installed = version(kind, &dst, Side::Content)?;
            let newer = version_compare(
                bundled.as_deref().unwrap_or(""),
                installed.as_deref().unwrap_or(""),
            ) == Ordering::Greater;
            (newer, installed)
        }
    };
    if !newer {
        return Ok(outcome(Action::Kept, installed));
    }
    stage(&src, &staged)?;
    if meta.is_dir() || fs::symlink_metadata(&staged).is_ok_and(|m| m.is_dir()) {
        let old = sibling(&dst, REPLACED);
        if let Err(e) = rename(&dst, &old) {
            let _ = remove_tree(&staged);
            return Err(e);
        }
        if let Err(e) = rename(&staged, &dst) {
            // Put the old one back (if even that fails, the item is missing
            // and the next run adds it); the new copy goes.
            let _ = fs::rename(&old, &dst);
            let _ = remove_tree(&staged);
            return Err(e);
        }
        sync_parent(&dst)?;
        remove_tree(&old)?;
    } else {
        // A file over a file: one atomic rename.
        rename(&staged, &dst)?;
        sync_parent(&dst)?;
    }
    Ok(outcome(Action::Updated, installed))
}

/// `.<name><suffix>` beside `path`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(suffix);
    path.with_file_name(name)
}

/// Copies `src` to `staged`, removing what a failed copy left.
fn stage(src: &Path, staged: &Path) -> Result<(), Error> {
    if fs::symlink_metadata(staged).is_ok() {
        remove_tree(staged)?;
    }
    let copied = copy_tree(src, staged);
    if copied.is_err() {
        let _ = remove_tree(staged);
    }
    copied
}

/// Which tree a path is in: says whose fault an I/O error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Bundled,
    Content,
}

/// The version of an item of `kind` at `path`; `None` when it has none
/// (missing, another kind of file, or no header).
fn version(kind: Kind, path: &Path, side: Side) -> Result<Option<String>, Error> {
    let err = |e, p: &Path| match side {
        Side::Bundled => bundled_error("read", p, e),
        Side::Content => content_error("read", p, e),
    };
    let is_dir = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    let is_file = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
    let file = match kind {
        Kind::File => return Ok(None),
        Kind::Theme if is_dir(path) => Some(path.join("style.css")),
        Kind::PluginDir if is_dir(path) => plugin_main_file(path).map_err(|e| err(e, path))?,
        Kind::PluginFile if is_file(path) => Some(path.to_path_buf()),
        _ => None,
    };
    let Some(file) = file else {
        return Ok(None);
    };
    match read_head(&file) {
        Ok(text) => Ok(header(&text, "Version")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(e, &file)),
    }
}

/// A plugin directory's main file as WordPress finds it: a `.php` file at
/// its top (not hidden) whose header has a non-empty `Plugin Name:`.
/// WordPress lists every such file as a plugin; the one taken here is
/// `<dir>/<dir>.php` when it is one, else the first by name.
pub fn plugin_main_file(dir: &Path) -> io::Result<Option<PathBuf>> {
    let mut names: Vec<OsString> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    let mut own = dir.file_name().unwrap_or_default().to_os_string();
    own.push(".php");
    if let Some(i) = names.iter().position(|n| *n == own) {
        let n = names.remove(i);
        names.insert(0, n);
    }
    for name in names {
        let b = name.as_encoded_bytes();
        if b.starts_with(b".") || !b.ends_with(b".php") {
            continue;
        }
        let path = dir.join(&name);
        // WordPress follows links here and skips what it cannot read.
        if !fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let text = match read_head(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => continue,
            Err(e) => return Err(e),
        };
        if header(&text, "Plugin Name").is_some() {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// The first 8 KiB of a file: what WordPress reads for its header.
fn read_head(path: &Path) -> io::Result<Vec<u8>> {
    let mut text = Vec::new();
    fs::File::open(path)?
        .take(HEADER_BYTES)
        .read_to_end(&mut text)?;
    Ok(text)
}

/// The value of header `key` in `text` (a file's first 8 KiB) as
/// WordPress's `get_file_data()` reads it: `\r` counts as a line end; the
/// first line matching `^(?:[ \t]*<\?php)?[ \t/*#@]*KEY:(.*)$`, ASCII
/// case-insensitively; the value cut at the first `*/` or `?>`, then
/// trimmed. `None` for an empty value (and for `0`, which PHP takes as
/// empty too).
pub fn header(text: &[u8], key: &str) -> Option<String> {
    let text = &text[..text.len().min(HEADER_BYTES as usize)];
    for line in text.split(|&b| b == b'\n' || b == b'\r') {
        let Some(raw) = header_value(line, key.as_bytes()) else {
            continue;
        };
        // PHP: `preg_match(...) && $match[1]`: "" and "0" are false.
        if raw.is_empty() || raw == b"0" {
            return None;
        }
        let cut = (0..raw.len())
            .find(|&i| raw[i..].starts_with(b"*/") || raw[i..].starts_with(b"?>"))
            .unwrap_or(raw.len());
        let value = String::from_utf8_lossy(&raw[..cut]);
        let value = value.trim_matches([' ', '\t', '\n', '\r', '\0', '\x0B']);
        return (!value.is_empty()).then(|| value.to_string());
    }
    None
}

/// The captured `(.*)` of one line, if the line matches.
fn header_value<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let after_key = |rest: &'a [u8]| {
        // `[ \t/*#@]*` then `KEY:`: letters are not in the class, so the
        // longest run is the only one that can be followed by the key.
        let skip = rest.iter().take_while(|b| b" \t/*#@".contains(b)).count();
        let rest = &rest[skip..];
        let n = key.len();
        (rest.len() > n && rest[..n].eq_ignore_ascii_case(key) && rest[n] == b':')
            .then(|| &rest[n + 1..])
    };
    // With the optional `[ \t]*<?php` first, then without it.
    let blanks = line.iter().take_while(|b| b" \t".contains(b)).count();
    let after_tag = &line[blanks..];
    let tagged = after_tag
        .get(..5)
        .is_some_and(|t| t.eq_ignore_ascii_case(b"<?php"));
    tagged
        .then(|| after_key(&after_tag[5..]))
        .flatten()
        .or_else(|| after_key(line))
}

/// PHP's `version_compare($a, $b)`, which WordPress's updater uses to tell
/// whether a plugin or theme has a newer version.
///
/// Dotted numbers compare part by part, numerically (`1.10` > `1.9`); a
/// version with more parts is newer when the next part is a number
/// (`1.0.1` > `1.0`, and so `1.0.0` > `1.0`). `-`, `_` and `+` act as dots
/// and a change between digits and letters starts a new part; letter parts
/// rank `dev` < `alpha` = `a` < `beta` = `b` < `RC` = `rc` < a number <
/// `pl` = `p` (by prefix; any other word ranks below `dev`), so
/// `5.3-beta1` < `5.3-RC` < `5.3` < `5.3-pl1`. An empty version is older
/// than any other. Numbers longer than PHP's integers compare exactly here
/// where PHP would clamp them.
pub fn version_compare(a: &str, b: &str) -> Ordering {
    compare_versions(a.as_bytes(), b.as_bytes())
}

fn compare_versions(a: &[u8], b: &[u8]) -> Ordering {
    if a.is_empty() || b.is_empty() {
        return (!a.is_empty()).cmp(&!b.is_empty());
    }
    let canon = |v: &[u8]| {
        if v[0] == b'#' {
            v.to_vec()
        } else {
            canonicalize(v)
        }
    };
    let (v1, v2) = (canon(a), canon(b));
    let (mut p1, mut p2) = (0, 0);
    // Whether a dot followed the part last compared (C's n1, n2 != NULL).
    let (mut more1, mut more2) = (true, true);
    let mut order = Ordering::Equal;
    while p1 < v1.len() && p2 < v2.len() && more1 && more2 {
        let end1 = v1[p1..].iter().position(|&c| c == b'.').map(|i| p1 + i);
        let end2 = v2[p2..].iter().position(|&c| c == b'.').map(|i| p2 + i);
        order = compare_parts(
            &v1[p1..end1.unwrap_or(v1.len())],
            &v2[p2..end2.unwrap_or(v2.len())],
        );
        more1 = end1.is_some();
        more2 = end2.is_some();
        if order != Ordering::Equal {
            break;
        }
        if let Some(e) = end1 {
            p1 = e + 1;
        }
        if let Some(e) = end2 {
            p2 = e + 1;
        }
    }
    if order == Ordering::Equal {
        if more1 {
            let rest = &v1[p1..];
            order = if rest.first().is_some_and(u8::is_ascii_digit) {
                Ordering::Greater
            } else {
                compare_versions(rest, b"#N#")
            };
        } else if more2 {
            let rest = &v2[p2..];
            order = if rest.first().is_some_and(u8::is_ascii_digit) {
                Ordering::Less
            } else {
                compare_versions(b"#N#", rest)
            };
        }
    }
    order
}

/// PHP's `php_canonicalize_version`: `-`, `_`, `+` and other bytes that
/// are not ASCII letters or digits become one dot, and a dot goes between a
/// digit and a non-digit (the non-digit kept, as PHP does).
fn canonicalize(v: &[u8]) -> Vec<u8> {
    let digit = |c: u8| c.is_ascii_digit();
    let non_digit = |c: u8| !c.is_ascii_digit() && c != b'.';
    let mut out = Vec::with_capacity(v.len() * 2);
    out.push(v[0]);
    let mut last_in = v[0];
    for &c in &v[1..] {
        let dot = out.last() != Some(&b'.');
        if matches!(c, b'-' | b'_' | b'+') {
            if dot {
                out.push(b'.');
            }
        } else if (non_digit(last_in) && digit(c)) || (digit(last_in) && non_digit(c)) {
            if dot {
                out.push(b'.');
            }
            out.push(c);
        } else if !c.is_ascii_alphanumeric() {
            if dot {
                out.push(b'.');
            }
        } else {
            out.push(c);
        }
        last_in = c;
    }
    out
}

fn compare_parts(a: &[u8], b: &[u8]) -> Ordering {
    let starts_digit = |p: &[u8]| p.first().is_some_and(u8::is_ascii_digit);
    match (starts_digit(a), starts_digit(b)) {
        (true, true) => compare_numbers(a, b),
        (false, false) => special_rank(a).cmp(&special_rank(b)),
        (true, false) => special_rank(b"#N#").cmp(&special_rank(b)),
        (false, true) => special_rank(a).cmp(&special_rank(b"#N#")),
    }
}

/// The leading digits of two parts, compared as numbers of any length.
fn compare_numbers(a: &[u8], b: &[u8]) -> Ordering {
    let digits = |p: &[u8]| {
        let n = p.iter().take_while(|c| c.is_ascii_digit()).count();
        let zeros = p[..n].iter().take_while(|&&c| c == b'0').count();
        p[zeros..n].to_vec()
    };
    let (a, b) = (digits(a), digits(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(&b))
}

/// PHP's special version forms, matched as prefixes in this order.
fn special_rank(part: &[u8]) -> i8 {
    const FORMS: [(&[u8], i8); 10] = [
        (b"dev", 0),
        (b"alpha", 1),
        (b"a", 1),
        (b"beta", 2),
        (b"b", 2),
        (b"RC", 3),
        (b"rc", 3),
        (b"#", 4),
        (b"pl", 5),
        (b"p", 5),
    ];
    FORMS
        .iter()
        .find(|(form, _)| part.starts_with(form))
        .map_or(-1, |&(_, rank)| rank)
}

/// Whether two files have the same bytes.
fn same_bytes(bundled: &Path, installed: &Path) -> Result<bool, Error> {
    let a = fs::read(bundled).map_err(|e| bundled_error("read", bundled, e))?;
    let b = fs::read(installed).map_err(|e| content_error("read", installed, e))?;
    Ok(a == b)
}

/// Creates `dir` (mode 0755) unless it is there; fails if it is not a
/// directory.
fn ensure_dir(dir: &Path) -> Result<(), Error> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(content_error(
                "use",
                dir,
                io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(content_error("inspect", dir, e)),
    }
    fs::DirBuilder::new()
        .mode(DIR_MODE)
        .create(dir)
        .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)))
        .map_err(|e| content_error("create", dir, e))?;
    tracing::info!(dir = %dir.display(), "created");
    Ok(())
}

/// Removes the hidden copies an interrupted run left in `dir`.
fn remove_leftovers(dir: &Path) -> Result<(), Error> {
    for name in entries(dir, Side::Content)? {
        let b = name.as_encoded_bytes();
        if b.starts_with(b".")
            && (b.ends_with(STAGED.as_bytes()) || b.ends_with(REPLACED.as_bytes()))
            && b.len() > 1 + STAGED.len().min(REPLACED.len())
        {
            let path = dir.join(&name);
            tracing::warn!(path = %path.display(), "left by an interrupted run: removed");
            remove_tree(&path)?;
        }
    }
    Ok(())
}

/// The names in `dir`, sorted.
fn entries(dir: &Path, side: Side) -> Result<Vec<OsString>, Error> {
    let err = |e| match side {
        Side::Bundled => bundled_error("read", dir, e),
        Side::Content => content_error("read", dir, e),
    };
    let mut names = fs::read_dir(dir)
        .map_err(err)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(err)?;
    names.sort();
    Ok(names)
}

fn read_meta(path: &Path) -> Result<fs::Metadata, Error> {
    fs::symlink_metadata(path).map_err(|e| bundled_error("read", path, e))
}

/// Copies a tree: directories, files (with their permission bits) and
/// symbolic links; new files are the running user's. `dst` must not exist.
fn copy_tree(src: &Path, dst: &Path) -> Result<(), Error> {
    let meta = read_meta(src)?;
    let mode = meta.mode() & 0o7777;
    let ty = meta.file_type();
    if ty.is_dir() {
        // Writable while it is filled; its own mode once full.
        fs::DirBuilder::new()
            .mode(0o700)
            .create(dst)
            .map_err(|e| content_error("create", dst, e))?;
        for name in entries(src, Side::Bundled)? {
            copy_tree(&src.join(&name), &dst.join(&name))?;
        }
        set_mode(dst, mode)?;
        sync_dir(dst)
    } else if ty.is_file() {
        let mut from = fs::File::open(src).map_err(|e| bundled_error("read", src, e))?;
        let mut to = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dst)
            .map_err(|e| content_error("create", dst, e))?;
        io::copy(&mut from, &mut to).map_err(|e| content_error("copy into", dst, e))?;
        to.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| content_error("set the mode of", dst, e))?;
        to.sync_all()
            .map_err(|e| content_error("write to disk", dst, e))
    } else if ty.is_symlink() {
        let target = fs::read_link(src).map_err(|e| bundled_error("read", src, e))?;
        std::os::unix::fs::symlink(&target, dst).map_err(|e| content_error("create", dst, e))
    } else {
        Err(bundled_error(
            "copy",
            src,
            io::Error::new(
                io::ErrorKind::Unsupported,
                "not a file, directory or symbolic link",
            ),
        ))
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| content_error("set the mode of", path, e))
}

fn rename(from: &Path, to: &Path) -> Result<(), Error> {
    fs::rename(from, to).map_err(|e| {
        content_error(
            "rename",
            from,
            io::Error::new(e.kind(), format!("to {}: {e}", to.display())),
        )
    })
}

/// Writes the directory holding `path` to disk, once a rename put `path`
/// in place.
fn sync_parent(path: &Path) -> Result<(), Error> {
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Writes a directory's entries to disk (a copy survives a crash of the
/// node once renamed in).
fn sync_dir(dir: &Path) -> Result<(), Error> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| content_error("write to disk", dir, e))
}

/// Removes a file, link or directory tree of this program's own (a staged
/// copy, a replaced one): a directory without write permission for its
/// owner, as a release may ship, is made writable first.
fn remove_tree(path: &Path) -> Result<(), Error> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(content_error("inspect", path, e)),
    };
    if !meta.is_dir() {
        return fs::remove_file(path).map_err(|e| content_error("remove", path, e));
    }
    if meta.mode() & 0o700 != 0o700 {
        set_mode(path, (meta.mode() & 0o7777) | 0o700)?;
    }
    for name in entries(path, Side::Content)? {
        remove_tree(&path.join(name))?;
    }
    fs::remove_dir(path).map_err(|e| content_error("remove", path, e))
}

fn bundled_error(action: &'static str, path: &Path, error: io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        error,
        hint: String::new(),
    }
}

/// An error on the volume; a permission error says who must be able to write.
fn content_error(action: &'static str, path: &Path, error: io::Error) -> Error {
    let hint = match error.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            // The owner of /proc/self is the process's user.
            let uid = fs::metadata("/proc/self")
                .map(|m| format!(" (uid {})", m.uid()))
                .unwrap_or_default();
            format!(
                "; the volume holding the content directory must be writable by the user bootstrap runs as{uid}"
            )
        }
        _ => String::new(),
    };
    Error::Io {
        action,
        path: path.to_path_buf(),
        error,
        hint,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn numeric_dotted_versions_compare_by_number() {
        use Ordering::*;
        for (a, b, o) in [
            ("1.10", "1.9", Greater),
            ("1.9", "1.10", Less),
            ("5.3", "5.3", Equal),
            ("5.3.1", "5.3", Greater),
            ("1.0.0", "1.0", Greater),
            ("2", "10", Less),
            ("007", "7", Equal),
            (
                "99999999999999999999999",
                "99999999999999999999998",
                Greater,
            ),
            ("5.3", "5.3-beta", Greater),
            ("5.3-beta1", "5.3-RC1", Less),
            ("5.3-RC1", "5.3", Less),
            ("5.3-pl1", "5.3", Greater),
            ("1.0", "", Greater),
            ("", "", Equal),
        ] {
            assert_eq!(version_compare(a, b), o, "{a} vs {b}");
        }
    }

    #[test]
    fn headers_are_read_as_wordpress_reads_them() {
        let css = b"/*\nTheme Name: T\nVersion: 1.6\n*/\n";
        assert_eq!(header(css, "Version").as_deref(), Some("1.6"));
        let php = b"<?php\n/**\n * Plugin Name: Hello Dolly\n * Version: 1.7.2 */\n";
        assert_eq!(header(php, "Plugin Name").as_deref(), Some("Hello Dolly"));
        assert_eq!(header(php, "version").as_deref(), Some("1.7.2"));
        assert_eq!(
            header(b"<?php // Version: 3 ?>", "Version").as_deref(),
            Some("3")
        );
        assert_eq!(header(b"Stable Version: 3", "Version"), None);
        assert_eq!(header(b"Version:0", "Version"), None);
        assert_eq!(header(b"x\rVersion: 2\r", "Version").as_deref(), Some("2"));
    }

    #[test]
    fn staged_and_replaced_siblings_are_hidden_beside_the_item() {
        let p = Path::new("/c/plugins/akismet");
        assert_eq!(
            sibling(p, STAGED),
            Path::new("/c/plugins/.akismet.bootstrap-new")
        );
        assert_eq!(
            sibling(p, REPLACED),
            Path::new("/c/plugins/.akismet.bootstrap-old")
        );
    }
}
