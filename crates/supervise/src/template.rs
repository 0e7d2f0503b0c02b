//! Config templates: `${VAR}` placeholders filled from the environment or,
//! for Kubernetes Secrets mounted as files, from the file `$VAR_FILE` names.

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
    #[error("template {path} line {line}: {var}_FILE={file}: cannot read: {source}")]
    ReadValue {
        path: PathBuf,
        line: usize,
        var: String,
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("template target {path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
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
        let mut text =
            std::fs::read_to_string(&file).map_err(|source| TemplateError::ReadValue {
                path: path.to_owned(),
                line,
                var: var.to_owned(),
                file: file.clone(),
                source,
            })?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        return Ok(text);
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
    pub text: String,
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
            let text =
                std::fs::read_to_string(&t.source).map_err(|source| TemplateError::Read {
                    path: t.source.clone(),
                    source,
                })?;
            Ok(Rendered {
                target: t.target.clone(),
                mode: t.mode.unwrap_or(0o644),
                text: render(&t.source, &text, values)?,
            })
        })
        .collect()
}

/// Writes each rendered file (temp file + rename, so a reader never sees
/// half a file), creating missing parent directories.
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
        std::fs::write(&tmp, &r.text).map_err(err)?;
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
}
