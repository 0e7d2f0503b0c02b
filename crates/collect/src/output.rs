//! The writer: sends the buffer to InfluxDB 1.x `/write`, oldest first,
//! gzip-compressed, in batches; backs off exponentially while InfluxDB is
//! away and removes a batch from the buffer only once InfluxDB answered 204.

use std::io::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use tokio::sync::{Notify, watch};

use crate::buffer::{Batch, Buffer};
use crate::config;

/// What the gather loop and the writer share.
#[derive(Debug)]
pub struct Shared {
    buffer: Mutex<Buffer>,
    /// Wakes the writer when points arrive.
    pub notify: Notify,
}

impl Shared {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Shared {
            buffer: Mutex::new(Buffer::new(limit)),
            notify: Notify::new(),
        })
    }

    pub fn buffer(&self) -> MutexGuard<'_, Buffer> {
        // A panic while holding the lock aborts the process (panic = abort
        // in release), so a poisoned lock only shows up in tests.
        self.buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot reach InfluxDB: {}", error_chain(.0))]
    Transport(#[from] reqwest::Error),
    #[error("InfluxDB answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("cannot compress the batch: {0}")]
    Compress(#[from] std::io::Error),
}

/// The InfluxDB client of the writer.
#[derive(Debug)]
pub struct Writer {
    client: reqwest::Client,
    config: config::Output,
    password: Option<String>,
    database_ready: bool,
}

enum Outcome {
    Written,
    Rejected(String),
    Failed(WriteError),
}

impl Writer {
    /// Builds the client and reads the password file (an unreadable
    /// password file is an error naming it).
    pub fn new(config: config::Output) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .pool_max_idle_per_host(1)
            .build()?;
        let mut w = Writer {
            client,
            config,
            password: None,
            database_ready: false,
        };
        w.password = w.load_password()?;
        Ok(w)
    }

    fn load_password(&self) -> anyhow::Result<Option<String>> {
        if self.config.username.is_empty() {
            return Ok(None);
        }
        if self.config.password_file.as_os_str().is_empty() {
            return Ok(Some(self.config.password.clone()));
        }
        let p = daemon::secret::read(&self.config.password_file)
            .map_err(|e| anyhow::anyhow!("output.password_file: {e}"))?;
        Ok(Some(p))
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.config.url.trim_end_matches('/'))
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.password {
            Some(p) => req.basic_auth(&self.config.username, Some(p)),
            None => req,
        }
    }

    /// `CREATE DATABASE` (idempotent in InfluxDB). A refusal for lack of
    /// rights is fine: the database then exists already, made by an admin.
    pub async fn create_database(&mut self) -> Result<(), WriteError> {
        let q = format!(
            "CREATE DATABASE \"{}\"",
            self.config
                .database
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        );
        let resp = self
            .auth(self.client.post(self.endpoint("/query")))
            .form(&[("q", q.as_str())])
            .send()
            .await?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let refused = status == StatusCode::FORBIDDEN
            || status == StatusCode::UNAUTHORIZED
            || body.contains("not authorized")
            || body.contains("authoriz");
        if refused {
            tracing::info!(
                database = %self.config.database,
                "not allowed to create the database; writing on, assuming it exists"
            );
        } else if !status.is_success() || body.contains("\"error\"") {
            return Err(WriteError::Status { status, body });
        } else {
            tracing::info!(database = %self.config.database, "database ready");
        }
        self.database_ready = true;
        Ok(())
    }

    async fn write(&mut self, batch: &Batch) -> Outcome {
        if self.config.create_database
            && !self.database_ready
            && let Err(e) = self.create_database().await
        {
            return Outcome::Failed(e);
        }
        let mut gz = GzEncoder::new(
            Vec::with_capacity(batch.body.len() / 8),
            Compression::fast(),
        );
        let body = match gz
            .write_all(batch.body.as_bytes())
            .and_then(|()| gz.finish())
        {
            Ok(b) => b,
            Err(e) => return Outcome::Failed(e.into()),
        };
        let req = self
            .auth(self.client.post(self.endpoint("/write")))
            .query(&[("db", self.config.database.as_str()), ("precision", "ns")])
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body);
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e.into()),
        };
        let status = resp.status();
        if status.is_success() {
            return Outcome::Written;
        }
        let body = resp.text().await.unwrap_or_default();
        match status {
            // Malformed points (or beyond the retention policy): InfluxDB
            // will refuse them forever.
            StatusCode::BAD_REQUEST => Outcome::Rejected(body),
            StatusCode::NOT_FOUND if body.contains("database not found") => {
                self.database_ready = false;
                Outcome::Failed(WriteError::Status { status, body })
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                // The secret may have been rotated under us.
                if let Ok(p) = self.load_password() {
                    self.password = p;
                }
                Outcome::Failed(WriteError::Status { status, body })
            }
            _ => Outcome::Failed(WriteError::Status { status, body }),
        }
    }

    /// Sends the buffer until `stop` turns true and then until the buffer
    /// is empty or a write fails.
    pub async fn run(mut self, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
        let mut backoff = self.config.retry_initial;
        let mut failing = false;
        loop {
            let stopping = *stop.borrow();
            let batch = shared.buffer().peek_batch(self.config.batch_size);
            let Some(batch) = batch else {
                if stopping {
                    return;
                }
                tokio::select! {
                    () = shared.notify.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            };
            match self.write(&batch).await {
                Outcome::Written => {
                    shared.buffer().acknowledge(&batch);
                    if failing {
                        tracing::info!("InfluxDB writes work again");
                        failing = false;
                    }
                    backoff = self.config.retry_initial;
                }
                Outcome::Rejected(body) => {
                    // "partial write: ... dropped=N": the rest was written.
                    let rejected = partial_write_dropped(&body)
                        .unwrap_or(batch.points)
                        .min(batch.points);
                    let mut b = shared.buffer();
                    b.counters.write_errors += 1;
                    b.discard(&batch, rejected);
                    drop(b);
                    tracing::warn!(points = batch.points, rejected, %body, "InfluxDB refused points; they are dropped");
                }
                Outcome::Failed(e) => {
                    shared.buffer().counters.write_errors += 1;
                    if !failing {
                        tracing::warn!(error = %e, "write to InfluxDB failed; keeping points and retrying with back-off");
                        failing = true;
                    } else {
                        tracing::debug!(error = %e, ?backoff, "write failed again");
                    }
                    if stopping {
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(self.config.retry_max);
                }
            }
        }
    }
}

/// An error with its causes (reqwest's own message is only the outer
/// layer, e.g. "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The `dropped=N` of InfluxDB's "partial write" error.
fn partial_write_dropped(body: &str) -> Option<usize> {
    if !body.contains("partial write") {
        return None;
    }
    let rest = &body[body.rfind("dropped=")? + "dropped=".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// How long the writer may go on flushing after a stop request.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(5);
