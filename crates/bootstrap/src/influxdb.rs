//! `bootstrap influxdb`: the `metrics` database and the stack's InfluxDB users.
//!
//! InfluxDB 1.x runs with `auth-enabled = true`. While it has no user at all
//! it accepts exactly one unauthenticated statement kind, `CREATE USER ...
//! WITH ALL PRIVILEGES`; bootstrap uses that to create `admin` on a fresh
//! server and authenticates as `admin` ever after. Every run then makes the
//! server match the contract (docs/contract.md):
//!
//! | user | privilege |
//! |---|---|
//! | `admin` | admin (ALL PRIVILEGES) |
//! | `collect` | WRITE on `metrics` |
//! | `grafana` | READ on `metrics` |
//!
//! `metrics` gets a default retention policy `thirty_days` (30 d). Passwords of
//! `collect` and `grafana` are set on every run (`SET PASSWORD`). The admin
//! password itself can only be rotated by hand (`SET PASSWORD FOR admin`):
//! bootstrap knows only the new one and then fails, naming the cause.

use std::time::Duration;

use serde::Deserialize;

use crate::Error;
use crate::deadline::{Attempt, retry};

pub const DATABASE: &str = "metrics";
pub const RETENTION_POLICY: &str = "thirty_days";
pub const RETENTION: &str = "30d";

/// Everything `bootstrap influxdb` needs, secrets already read.
#[derive(Debug, Clone)]
pub struct Seed {
    /// e.g. `http://127.0.0.1:8086`
    pub url: String,
    pub admin_password: String,
    pub collect_password: String,
    pub grafana_password: String,
    pub timeout: Duration,
}

/// An InfluxQL client over the HTTP API.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    auth: Option<(String, String)>,
}

#[derive(Debug, Deserialize)]
struct Response {
    #[serde(default)]
    results: Vec<StatementResult>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StatementResult {
    #[serde(default)]
    series: Vec<Series>,
    error: Option<String>,
}

/// One series of a query result, as the HTTP API returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Series {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub values: Vec<Vec<serde_json::Value>>,
}

/// Why a query failed.
#[derive(Debug)]
pub enum QueryError {
    /// 401: no or wrong credentials.
    Unauthorized(String),
    /// Connection refused, timeout...: the server may still be starting.
    Transport(String),
    /// The server answered with an error.
    Server(String),
}

impl From<QueryError> for Error {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Unauthorized(m) => Error::Influx(format!("not authorized: {m}")),
            QueryError::Transport(m) | QueryError::Server(m) => Error::Influx(m),
        }
    }
}

impl QueryError {
    /// 401, or a fresh auth-enabled server asking for its first admin.
    pub fn is_unauthorized(&self) -> bool {
        match self {
            QueryError::Unauthorized(_) => true,
            QueryError::Server(m) => m.contains("create admin user first"),
            QueryError::Transport(_) => false,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            QueryError::Unauthorized(m) | QueryError::Server(m) | QueryError::Transport(m) => m,
        }
    }
}

impl Client {
    pub fn new(url: &str, auth: Option<(String, String)>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Client {
            http,
            url: url.trim_end_matches('/').to_string(),
            auth,
        }
    }

    /// Runs InfluxQL (optionally against `db`) and returns the series of
    /// every statement, in order.
    pub async fn query(&self, q: &str, db: Option<&str>) -> Result<Vec<Series>, QueryError> {
        let mut form = vec![("q", q)];
        if let Some(db) = db {
            form.push(("db", db));
        }
        let mut req = self.http.post(format!("{}/query", self.url)).form(&form);
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| QueryError::Transport(format!("{}: {e}", self.url)))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| QueryError::Transport(e.to_string()))?;
        let parsed: Option<Response> = serde_json::from_str(&body).ok();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(QueryError::Unauthorized(
                parsed.and_then(|r| r.error).unwrap_or(body),
            ));
        }
        let parsed = parsed.ok_or_else(|| QueryError::Server(format!("{status}: {body}")))?;
        if let Some(e) = parsed.error {
            return Err(QueryError::Server(format!("{q}: {e}")));
        }
        let mut out = Vec::new();
        for r in parsed.results {
            if let Some(e) = r.error {
                return Err(QueryError::Server(format!("{q}: {e}")));
            }
            out.extend(r.series);
        }
        Ok(out)
    }

    /// Waits until `/ping` answers.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        retry(&format!("InfluxDB at {}", self.url), timeout, || async {
            match self.http.get(format!("{}/ping", self.url)).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(Attempt::Retry(format!("/ping answered {}", r.status()))),
                Err(e) => Err(Attempt::Retry(e.to_string())),
            }
        })
        .await
    }
}

/// An InfluxQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Brings database, retention policy and users in line with the contract.
pub async fn seed(cfg: &Seed) -> Result<(), Error> {
    let anonymous = Client::new(&cfg.url, None);
    anonymous.wait_ready(cfg.timeout).await?;
    let admin = Client::new(
        &cfg.url,
        Some(("admin".to_string(), cfg.admin_password.clone())),
    );

    let users = match admin.query("SHOW USERS", None).await {
        Ok(series) => series,
        Err(e) if e.is_unauthorized() => {
            let first = e.message().to_string();
            // Either a fresh server (no user yet) or a wrong admin password.
            let create = format!(
                "CREATE USER admin WITH PASSWORD {} WITH ALL PRIVILEGES",
                literal(&cfg.admin_password)
            );
            anonymous.query(&create, None).await.map_err(|e| {
                Error::Influx(format!(
                    "cannot log in as admin ({first}) and cannot create the first admin \
                     ({e:?}); if the admin password was changed in the Secret, set it on \
                     the server by hand: SET PASSWORD FOR admin = '...'"
                ))
            })?;
            tracing::info!("created the first admin user");
            admin.query("SHOW USERS", None).await?
        }
        Err(e) => return Err(e.into()),
    };
    // Column order of SHOW USERS is (user, admin).
    let existing: Vec<(String, bool)> = users
        .iter()
        .flat_map(|s| s.values.iter())
        .filter_map(|row| {
            Some((
                row.first()?.as_str()?.to_string(),
                row.get(1)?.as_bool().unwrap_or(false),
            ))
        })
        .collect();
    let find = |name: &str| existing.iter().find(|(u, _)| u == name).map(|(_, a)| *a);

    match find("admin") {
        // Auth disabled and never seeded: create admin like on a fresh server.
        None => {
            admin
                .query(
                    &format!(
                        "CREATE USER admin WITH PASSWORD {} WITH ALL PRIVILEGES",
                        literal(&cfg.admin_password)
                    ),
                    None,
                )
                .await?;
        }
        Some(false) => {
            admin.query("GRANT ALL PRIVILEGES TO admin", None).await?;
        }
        Some(true) => {}
    }
    // Harmless when unchanged; applies the Secret when auth is disabled.
    admin
        .query(
            &format!("SET PASSWORD FOR admin = {}", literal(&cfg.admin_password)),
            None,
        )
        .await?;

    admin
        .query(&format!("CREATE DATABASE \"{DATABASE}\""), None)
        .await?;
    let policies = admin
        .query(&format!("SHOW RETENTION POLICIES ON \"{DATABASE}\""), None)
        .await?;
    let has_policy = policies
        .iter()
        .flat_map(|s| s.values.iter())
        .any(|row| row.first().and_then(|v| v.as_str()) == Some(RETENTION_POLICY));
    let verb = if has_policy { "ALTER" } else { "CREATE" };
    let replication = if has_policy { "" } else { " REPLICATION 1" };
    admin
        .query(
            &format!(
                "{verb} RETENTION POLICY \"{RETENTION_POLICY}\" ON \"{DATABASE}\" DURATION {RETENTION}{replication} DEFAULT"
            ),
            None,
        )
        .await?;

    for (user, password, privilege) in [
        ("collect", &cfg.collect_password, "WRITE"),
        ("grafana", &cfg.grafana_password, "READ"),
    ] {
        match find(user) {
            None => {
                admin
                    .query(
                        &format!("CREATE USER \"{user}\" WITH PASSWORD {}", literal(password)),
                        None,
                    )
                    .await?;
            }
            Some(is_admin) => {
                admin
                    .query(
                        &format!("SET PASSWORD FOR \"{user}\" = {}", literal(password)),
                        None,
                    )
                    .await?;
                if is_admin {
                    admin
                        .query(&format!("REVOKE ALL PRIVILEGES FROM \"{user}\""), None)
                        .await?;
                }
            }
        }
        // GRANT replaces the user's privilege on the database.
        admin
            .query(
                &format!("GRANT {privilege} ON \"{DATABASE}\" TO \"{user}\""),
                None,
            )
            .await?;
        tracing::info!(%user, %privilege, "user in place");
    }
    Ok(())
}
