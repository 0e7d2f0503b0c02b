//! Config templates: `${VAR}` placeholders filled from the environment or,
//! for Kubernetes Secrets mounted as files, from the file `$VAR_FILE` names,
//! read under the workspace's secret rule ([`daemon::secret`]: one trailing
//! line end dropped, an empty file is an error naming it).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::Template;

/// Why a template could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template {path} line {line}: variable {var} has no value (set {var} or {var}_FILE)")]
    Missing {
        path: PathBuf,
        line: usize,
        var: String,
    },
    /// The file `$VAR_FILE` names is unreadable or empty (the error names it).
    #[error("template {path} line {line}: {var}_FILE: {source}")]
    ReadValue {
        path: PathBuf,
        line: usize,
        var: String,
        source: daemon::secret::Error,
    },
    #[error("template target {path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template target {path}: owner {owner:?}: {reason}")]
    Owner {
        path: PathBuf,
        owner: String,
        reason: String,
    },
}

/// Where placeholder values come from; the process environment in
/// production, a map in unit tests.
pub trait Values {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub struct Environment;

impl Values for Environment {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Renders `text` (read from `path`, named in errors). `$${` is a literal `${`.
pub fn render(path: &Path, text: &str, values: &dyn Values) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos..];
            if let Some(tail) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = tail;
            } else if let Some((var, len)) = placeholder(after) {
                out.push_str(&value(path, n + 1, var, values)?);
                rest = &after[len..];
            } else {
                out.push('$');
                rest = &after[1..];
            }
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// `${NAME}` at the start of `s`: the name and the placeholder's length.
fn placeholder(s: &str) -> Option<(&str, usize)> {
    let body = s.strip_prefix("${")?;
    let end = body.find('}')?;
    let name = &body[..end];
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_')
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    Some((name, end + 3))
}

fn value(
    path: &Path,
    line: usize,
    var: &str,
    values: &dyn Values,
) -> Result<String, TemplateError> {
    if let Some(file) = values.get(&format!("{var}_FILE")) {
        let file = PathBuf::from(file);
        return daemon::secret::read(&file).map_err(|source| TemplateError::ReadValue {
            path: path.to_owned(),
            line,
            var: var.to_owned(),
            source,
        });
    }
    values.get(var).ok_or_else(|| TemplateError::Missing {
        path: path.to_owned(),
        line,
        var: var.to_owned(),
    })
}

/// A rendered template waiting to be written.
#[derive(Debug)]
pub struct Rendered {
    pub target: PathBuf,
    pub mode: u32,
    pub owner: Option<String>,
    pub contents: Vec<u8>,
}

/// Renders every template in memory, so that one bad template leaves every
/// target untouched.
pub fn render_all(
    templates: &[Template],
    values: &dyn Values,
) -> Result<Vec<Rendered>, TemplateError> {
    templates
        .iter()
        .map(|t| {
            let read_err = |source| TemplateError::Read {
                path: t.source.clone(),
                source,
            };
            let contents = if t.verbatim {
                std::fs::read(&t.source).map_err(read_err)?
            } else {
                let text = std::fs::read_to_string(&t.source).map_err(read_err)?;
                render(&t.source, &text, values)?.into_bytes()
            };
            Ok(Rendered {
                target: t.target.clone(),
                mode: t.mode.unwrap_or(0o644),
                owner: t.owner.clone(),
                contents,
            })
        })
        .collect()
}

/// The uid and gid of `user` or `user:group` (the user's own group when
/// none is named).
fn owner_ids(
    target: &Path,
    owner: &str,
) -> Result<(nix::unistd::Uid, nix::unistd::Gid), TemplateError> {
    let err = |reason: String| TemplateError::Owner {
        path: target.to_owned(),
        owner: owner.to_owned(),
        reason,
    };
    let (user, group) = match owner.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (owner, None),
    };
    let user = nix::unistd::User::from_name(user)
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("no such user".into()))?;
    let gid = match group {
        Some(g) => {
            nix::unistd::Group::from_name(g)
                .map_err(|e| err(e.to_string()))?
                .ok_or_else(|| err("no such group".into()))?
                .gid
        }
        None => user.gid,
    };
    Ok((user.uid, gid))
}

/// Checks that every owner exists, before anything is written.
pub fn check_owners(rendered: &[Rendered]) -> Result<(), TemplateError> {
    for r in rendered {
        if let Some(owner) = &r.owner {
            owner_ids(&r.target, owner)?;
        }
    }
    Ok(())
}

/// Writes each rendered file (temp file + rename, so a reader never sees
/// half a file, and never a file with the wrong owner or mode), creating
/// missing parent directories.
pub fn write_all(rendered: &[Rendered]) -> Result<(), TemplateError> {
    for r in rendered {
        let err = |source| TemplateError::Write {
            path: r.target.clone(),
            source,
        };
        if let Some(parent) = r.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let mut tmp = r.target.clone().into_os_string();
        tmp.push(".supervise-tmp");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            // Created with no access for anyone, then given its owner and mode.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(err)?;
            file.write_all(&r.contents).map_err(err)?;
        }
        if let Some(owner) = &r.owner {
            let (uid, gid) = owner_ids(&r.target, owner)?;
            nix::unistd::chown(&tmp, Some(uid), Some(gid))
                .map_err(|e| err(std::io::Error::from(e)))?;
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(r.mode)).map_err(err)?;
        std::fs::rename(&tmp, &r.target).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, String>);
    impl Values for Map {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    #[test]
    fn placeholders_escapes_and_plain_dollars() {
        let v = Map(HashMap::from([("HOST", "db".to_string())]));
        let out = render(Path::new("t"), "a ${HOST} $host $${HOST} ${1x} ${\n", &v).unwrap();
        assert_eq!(out, "a db $host ${HOST} ${1x} ${\n");
    }

    #[test]
    fn missing_names_line_and_var() {
        let v = Map(HashMap::new());
        let e = render(Path::new("/t.conf"), "x\ny\nz ${NOPE}\n", &v).unwrap_err();
        assert_eq!(
            e.to_string(),
            "template /t.conf line 3: variable NOPE has no value (set NOPE or NOPE_FILE)"
        );
    }

    #[test]
    fn file_values_follow_the_secret_rule() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        let v = Map(HashMap::from([("PW_FILE", pw.display().to_string())]));
        std::fs::write(&pw, "s3cret\r\n").unwrap();
        assert_eq!(render(Path::new("t"), "${PW}", &v).unwrap(), "s3cret");
        std::fs::write(&pw, "\n").unwrap();
        let e = render(Path::new("/t.conf"), "${PW}", &v).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "template /t.conf line 1: PW_FILE: secret {} is empty",
                pw.display()
            )
        );
    }
}
