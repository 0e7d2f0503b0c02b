//! `bootstrap grafana`: Grafana provisioning files.
//!
//! Writes, under the provisioning directory (default `/etc/grafana/provisioning`):
//!
//! - `datasources/influxdb.yaml`: the InfluxDB data source (InfluxQL,
//!   `http://influxdb:8086`, database `metrics`, user `grafana`, its password
//!   in `secureJsonData`), uid [`dashboard::DATASOURCE_UID`];
//! - `dashboards/ft_services.yaml`: a file provider for the folder below;
//! - `dashboards/ft_services/<service>.json`: one dashboard per service of
//!   [`services::SERVICES`].
//!
//! Each file is written to a temporary file in its directory and renamed over
//! the old one, so Grafana never reads half a file. The data source file is
//! mode 0640 (it holds a password); run bootstrap as Grafana's user or group.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Error;

pub mod dashboard;
pub mod services;

/// What `bootstrap grafana` needs, the secret already read.
#[derive(Debug, Clone)]
pub struct Provisioning {
    /// Grafana's provisioning directory.
    pub dir: PathBuf,
    /// The InfluxDB URL as Grafana's server reaches it.
    pub influxdb_url: String,
    pub database: String,
    pub user: String,
    pub password: String,
    /// Grafana's "min interval" for the data source: collect's interval.
    pub min_interval: String,
}

/// Writes `contents` to `path` atomically (temp file + fsync + rename).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// A YAML double-quoted scalar (JSON's string syntax is valid YAML).
fn yaml_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// How every provisioning file starts: whose it is, and the format version.
const HEAD: &str = "# Written by bootstrap grafana; changes are overwritten at the next start.\n\
                    apiVersion: 1\n";

/// The data source provisioning file.
pub fn datasource_yaml(p: &Provisioning) -> String {
    format!(
        "{HEAD}\
         datasources:\n\
         \x20 - name: InfluxDB\n\
         \x20   uid: {uid}\n\
         \x20   type: influxdb\n\
         \x20   access: proxy\n\
         \x20   url: {url}\n\
         \x20   user: {user}\n\
         \x20   database: {db}\n\
         \x20   isDefault: true\n\
         \x20   editable: false\n\
         \x20   jsonData:\n\
         \x20     dbName: {db}\n\
         \x20     httpMode: POST\n\
         \x20     timeInterval: {interval}\n\
         \x20   secureJsonData:\n\
         \x20     password: {password}\n",
        uid = yaml_str(dashboard::DATASOURCE_UID),
        url = yaml_str(&p.influxdb_url),
        user = yaml_str(&p.user),
        db = yaml_str(&p.database),
        interval = yaml_str(&p.min_interval),
        password = yaml_str(&p.password),
    )
}

/// The dashboard provider file, pointing at `dashboards_dir`.
pub fn provider_yaml(dashboards_dir: &Path) -> String {
    format!(
        "{HEAD}\
         providers:\n\
         \x20 - name: ft_services\n\
         \x20   orgId: 1\n\
         \x20   folder: ft_services\n\
         \x20   type: file\n\
         \x20   disableDeletion: true\n\
         \x20   allowUiUpdates: false\n\
         \x20   updateIntervalSeconds: 60\n\
         \x20   options:\n\
         \x20     path: {}\n",
        yaml_str(&dashboards_dir.to_string_lossy())
    )
}

/// Writes every provisioning file; returns the paths written.
pub fn provision(p: &Provisioning) -> Result<Vec<PathBuf>, Error> {
    let mut written = Vec::new();
    let ds = p.dir.join("datasources").join("influxdb.yaml");
    write_atomic(&ds, datasource_yaml(p).as_bytes(), 0o640)?;
    written.push(ds);
    let dashboards_dir = p.dir.join("dashboards").join("ft_services");
    let provider = p.dir.join("dashboards").join("ft_services.yaml");
    write_atomic(&provider, provider_yaml(&dashboards_dir).as_bytes(), 0o644)?;
    written.push(provider);
    for service in services::SERVICES {
        let path = dashboards_dir.join(format!("{}.json", service.name));
        let json = serde_json::to_vec_pretty(&dashboard::dashboard(service))?;
        write_atomic(&path, &json, 0o644)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn dashboards_have_unique_uids_and_panel_ids() {
        let mut uids = HashSet::new();
        for s in services::SERVICES {
            let d = dashboard::dashboard(s);
            assert!(uids.insert(d["uid"].as_str().unwrap().to_string()));
            let mut ids = HashSet::new();
            for panel in d["panels"].as_array().unwrap() {
                assert!(ids.insert(panel["id"].as_u64().unwrap()), "{}", s.name);
            }
            assert_eq!(d["schemaVersion"], dashboard::SCHEMA_VERSION);
        }
        assert_eq!(uids.len(), 7);
    }

    #[test]
    fn provision_writes_every_file_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let p = Provisioning {
            dir: dir.path().to_path_buf(),
            influxdb_url: "http://influxdb:8086".into(),
            database: "metrics".into(),
            user: "grafana".into(),
            password: "pa\"ss: #x".into(),
            min_interval: "10s".into(),
        };
        let written = provision(&p).unwrap();
        assert_eq!(written.len(), 2 + services::SERVICES.len());
        let ds = std::fs::read_to_string(dir.path().join("datasources/influxdb.yaml")).unwrap();
        assert!(ds.contains(r#"password: "pa\"ss: #x""#), "{ds}");
        let leftovers: Vec<_> = walk(dir.path())
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
