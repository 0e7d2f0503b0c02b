//! `bootstrap`: one-shot seeding of a fresh ft_services stack.
//!
//! Started by `supervise` as a `oneshot` at every container start, in the pod
//! that owns the thing it seeds; a second run changes nothing that is already
//! right and fixes what is not. Every secret is read from a file (a mounted
//! Kubernetes Secret, `/run/secrets/<secret>/<key>`); a missing or empty one
//! is an error naming the file.
//!
//! | subcommand | pod | reads | writes |
//! |---|---|---|---|
//! | `mysql` | mysql | `ft-mysql/*-password` | database `wordpress`, accounts `wordpress`, `phpmyadmin`, `collect` ([`mysql`]) |
//! | `influxdb` | influxdb | `ft-influxdb/*-password` | database `metrics`, users `admin`, `collect`, `grafana` ([`influxdb`]) |
//! | `wordpress` | wordpress | `ft-wordpress/admin-password`, `ft-wordpress/users`, `ft-mysql/wordpress-password` | WordPress install (its own installer) and users ([`wordpress`]) |
//! | `wordpress-content` | wordpress, before php-fpm, as its user | the image's bundled `wp-content` (`/usr/share/webapps/wordpress-content`) | the content directory on the volume (`/var/lib/wordpress/wp-content`): bundled themes and plugins added when missing, replaced when the image's are newer ([`wordpress::content`]) |
//! | `grafana` | grafana | `ft-influxdb/grafana-password` | provisioning files: data source, dashboard provider, one dashboard per service ([`grafana`]) |
//!
//! Peers that are still starting are retried until a deadline, then the
//! program exits non-zero with the last error. `wordpress-content` talks to
//! no peer and reads no secret: it works on files only and fails at the
//! first I/O error, naming the path.

use std::path::PathBuf;
use std::time::Duration;

pub mod deadline;
pub mod grafana;
pub mod influxdb;
pub mod mysql;
pub mod wordpress;

/// Everything that can stop a bootstrap run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Read under the workspace's one rule ([`daemon::secret`]).
    #[error(transparent)]
    Secret(#[from] daemon::secret::Error),
    #[error("{what} not reachable within {waited:?}; last error: {last}")]
    Unreachable {
        what: String,
        waited: Duration,
        last: String,
    },
    #[error("MySQL: {0}")]
    Mysql(#[from] mysql_async::Error),
    #[error("InfluxDB: {0}")]
    Influx(String),
    #[error("{}: line {line}: {reason}", path.display())]
    UsersLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dashboard JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("WordPress: {0}")]
    Wordpress(String),
    /// A file or directory (`wordpress-content`); `hint` says what to fix
    /// when it is not obvious (empty otherwise).
    #[error("cannot {action} {}: {error}{hint}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
        hint: String,
    },
}
