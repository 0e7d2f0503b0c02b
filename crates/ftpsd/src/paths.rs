//! The path a command names, read and resolved exactly as libunftp 0.24
//! does, so that the relay can check it before libunftp acts on it.
//!
//! libunftp answers `150` to `RETR`, `LIST`, `NLST` and `MLSD` at once and
//! only then finds a missing path (`550`); rclone and others take that for
//! a failed listing, where a plain `550` (what vsftpd and ProFTPD send)
//! tells them the directory does not exist, so they create it. The relay
//! checks the path first ([`Target::exists`]) and answers `550` itself.
//!
//! Parsing mirrors `line_parser/parser.rs` (the command is the text before
//! the first space, its argument everything after it; `LIST` drops leading
//! `-options`), resolution mirrors `datachan.rs` (`cwd.join(path)`, and
//! `"."` is the current directory for listings), and the lookup goes
//! through the home directory the way the storage back end does (`cap-std`,
//! a leading `/` meaning the home).

use std::path::{Path, PathBuf};

/// What a command reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A file to download (`RETR path`).
    File(String),
    /// A directory to list (`LIST`, `NLST`, `MLSD`); `None`: the current one.
    Dir(Option<String>),
}

/// The command word and its argument, split as libunftp splits them.
pub fn split(line: &str) -> (String, &str) {
    let (verb, argument) = line.split_once([' ', '\r', '\n']).unwrap_or((line, ""));
    (verb.to_ascii_uppercase(), argument)
}

/// The path a transfer command reads, if it is one libunftp would run.
pub fn transfer_target(line: &str) -> Option<Target> {
    let (verb, argument) = split(line);
    match verb.as_str() {
        // libunftp refuses an empty RETR itself (501).
        "RETR" if !argument.is_empty() => Some(Target::File(argument.to_owned())),
        "LIST" => Some(Target::Dir(list_path(argument))),
        "NLST" | "MLSD" => Some(Target::Dir(
            (!argument.is_empty()).then(|| argument.to_owned()),
        )),
        _ => None,
    }
}

/// `LIST`'s path after its options (`-la dir` -> `dir`), as libunftp reads
/// it: each leading word that starts with `-` is an option; `--` ends them.
fn list_path(argument: &str) -> Option<String> {
    let mut remaining = argument;
    while remaining.starts_with('-') {
        if remaining == "--" {
            remaining = "";
            break;
        }
        if let Some(rest) = remaining.strip_prefix("-- ") {
            remaining = rest;
            break;
        }
        remaining = remaining.split_once(' ').map_or("", |(_, rest)| rest);
    }
    (!remaining.is_empty()).then(|| remaining.to_owned())
}

/// `path` seen from the current directory `cwd`, as libunftp joins them.
pub fn resolve(cwd: &Path, path: &str) -> PathBuf {
    cwd.join(path)
}

/// A resolved path as the storage back end opens it beneath the home: the
/// leading `/` dropped, the home itself `.`.
pub fn in_home(resolved: &Path) -> PathBuf {
    match resolved.strip_prefix("/") {
        Ok(p) if p.as_os_str().is_empty() => PathBuf::from("."),
        Ok(p) => p.to_path_buf(),
        Err(_) => resolved.to_path_buf(),
    }
}

impl Target {
    /// The path beneath the home this target resolves to from `cwd`.
    pub fn locate(&self, cwd: &Path) -> PathBuf {
        in_home(&match self {
            Self::File(path) => resolve(cwd, path),
            Self::Dir(Some(path)) if path != "." => resolve(cwd, path),
            Self::Dir(_) => cwd.to_path_buf(),
        })
    }

    /// Whether the target is there to read, confined to `home` like every
    /// storage operation (so `..`, absolute paths and symlinks out of the
    /// home are missing too).
    pub fn exists(&self, home: &cap_std::fs::Dir, cwd: &Path) -> bool {
        let meta = home.metadata(self.locate(cwd));
        match self {
            Self::File(_) => meta.is_ok_and(|m| m.is_file()),
            Self::Dir(_) => meta.is_ok_and(|m| m.is_dir()),
        }
    }

    /// The reply when it is not there.
    pub fn missing_reply(&self) -> &'static str {
        match self {
            Self::File(_) => "550 No such file.",
            Self::Dir(_) => "550 No such directory.",
        }
    }
}

/// The directory of a `257 "dir"` reply to `PWD` (libunftp does not double
/// quotes inside the name: everything between the first and the last quote).
pub fn pwd_reply_dir(reply: &str) -> Option<PathBuf> {
    if !reply.starts_with("257") {
        return None;
    }
    let open = reply.find('"')?;
    let close = reply.rfind('"')?;
    (close > open).then(|| PathBuf::from(&reply[open + 1..close]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_are_read_as_libunftp_reads_them() {
        let dir = |p: &str| Some(Target::Dir(Some(p.to_owned())));
        assert_eq!(
            transfer_target("RETR a b.txt"),
            Some(Target::File("a b.txt".into()))
        );
        assert_eq!(transfer_target("retr x"), Some(Target::File("x".into())));
        assert_eq!(transfer_target("RETR"), None);
        assert_eq!(transfer_target("LIST"), Some(Target::Dir(None)));
        assert_eq!(transfer_target("LIST -a"), Some(Target::Dir(None)));
        assert_eq!(transfer_target("LIST -la dir"), dir("dir"));
        assert_eq!(transfer_target("LIST -l -a my dir"), dir("my dir"));
        assert_eq!(transfer_target("LIST -- -odd"), dir("-odd"));
        assert_eq!(transfer_target("LIST --"), Some(Target::Dir(None)));
        assert_eq!(transfer_target("NLST dir"), dir("dir"));
        assert_eq!(transfer_target("NLST -l"), dir("-l"));
        assert_eq!(transfer_target("MLSD"), Some(Target::Dir(None)));
        assert_eq!(transfer_target("MLSD  two"), dir(" two"));
        assert_eq!(transfer_target("STOR x"), None);
    }

    #[test]
    fn targets_resolve_from_the_current_directory_into_the_home() {
        let cwd = Path::new("/a/b");
        assert_eq!(Target::File("c".into()).locate(cwd), Path::new("a/b/c"));
        assert_eq!(Target::File("/c".into()).locate(cwd), Path::new("c"));
        assert_eq!(Target::Dir(None).locate(cwd), Path::new("a/b"));
        assert_eq!(Target::Dir(Some(".".into())).locate(cwd), Path::new("a/b"));
        assert_eq!(Target::Dir(Some("/".into())).locate(cwd), Path::new("."));
        assert_eq!(Target::Dir(None).locate(Path::new("/")), Path::new("."));
        assert_eq!(
            Target::Dir(Some("../x".into())).locate(Path::new("/")),
            Path::new("../x")
        );
    }

    #[test]
    fn existence_is_checked_inside_the_home_only() {
        let root = tempfile::tempdir().unwrap();
        let home_path = root.path().join("home");
        std::fs::create_dir_all(home_path.join("d")).unwrap();
        std::fs::write(home_path.join("f"), "x").unwrap();
        std::fs::write(root.path().join("outside"), "x").unwrap();
        std::os::unix::fs::symlink(root.path().join("outside"), home_path.join("out")).unwrap();
        let home =
            cap_std::fs::Dir::open_ambient_dir(&home_path, cap_std::ambient_authority()).unwrap();
        let top = Path::new("/");
        assert!(Target::File("f".into()).exists(&home, top));
        assert!(Target::File("/d/../f".into()).exists(&home, top));
        assert!(!Target::File("d".into()).exists(&home, top));
        assert!(!Target::File("missing".into()).exists(&home, top));
        assert!(!Target::File("../outside".into()).exists(&home, top));
        assert!(!Target::File("out".into()).exists(&home, top));
        assert!(Target::Dir(None).exists(&home, Path::new("/d")));
        assert!(!Target::Dir(Some("f".into())).exists(&home, top));
        assert!(!Target::Dir(Some("nope".into())).exists(&home, top));
    }

    #[test]
    fn pwd_replies_give_the_directory() {
        assert_eq!(
            pwd_reply_dir("257 \"/a \"b\"\""),
            Some(PathBuf::from("/a \"b\""))
        );
        assert_eq!(pwd_reply_dir("257 \"/\""), Some(PathBuf::from("/")));
        assert_eq!(pwd_reply_dir("550 no"), None);
    }
}
