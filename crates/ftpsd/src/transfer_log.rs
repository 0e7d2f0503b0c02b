//! Structured log lines for every transfer and file-system change, and for
//! session ends, from libunftp's notification events.

use async_trait::async_trait;
use libunftp::notification::{DataEvent, DataListener, EventMeta, PresenceEvent, PresenceListener};

/// The user and the session's trace id, as every event is logged with them.
fn who(meta: &EventMeta) -> (&str, &str) {
    (meta.username.as_str(), meta.trace_id.as_str())
}

/// Logs each event with the user and the session's trace id.
#[derive(Debug, Clone, Copy, Default)]
pub struct TransferLog;

#[async_trait]
impl DataListener for TransferLog {
    async fn receive_data_event(&self, event: DataEvent, meta: EventMeta) {
        let (user, session) = who(&meta);
        match event {
            DataEvent::Got { path, bytes } => {
                tracing::info!(user, session, path, bytes, "download")
            }
            DataEvent::Put { path, bytes } => tracing::info!(user, session, path, bytes, "upload"),
            DataEvent::Deleted { path } => tracing::info!(user, session, path, "delete"),
            DataEvent::MadeDir { path } => tracing::info!(user, session, path, "mkdir"),
            DataEvent::RemovedDir { path } => tracing::info!(user, session, path, "rmdir"),
            DataEvent::Renamed { from, to } => tracing::info!(user, session, from, to, "rename"),
        }
    }
}

#[async_trait]
impl PresenceListener for TransferLog {
    async fn receive_presence_event(&self, event: PresenceEvent, meta: EventMeta) {
        let (user, session) = who(&meta);
        match event {
            PresenceEvent::LoggedIn => tracing::info!(user, session, "session logged in"),
            PresenceEvent::LoggedOut => tracing::info!(user, session, "session logged out"),
        }
    }
}
