//! The board of program states and the probe endpoint that shows it:
//! `GET /healthz` (liveness) and `GET /readyz` (readiness), both JSON.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;

use crate::config::Kind;

/// Where a program is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Waiting for the programs in its `after`.
    Waiting,
    Running,
    /// A oneshot that exited 0.
    Completed,
    /// Ended on its own (a service) or with a failure (a oneshot).
    Failed,
    /// Ended while supervise was stopping.
    Stopped,
}

#[derive(Debug)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    pub phase: Phase,
    pub ready: bool,
    pub pid: Option<i32>,
    pub started: Option<Instant>,
    pub ran: Option<Duration>,
}

#[derive(Debug)]
pub struct BoardState {
    pub programs: Vec<Entry>,
    /// Index and pid (= process group) of each program, in start order.
    pub started: Vec<(usize, i32)>,
    pub stopping: bool,
    /// Earlier starts of supervise in this pod (see `restarts`).
    pub restarts: u32,
}

impl BoardState {
    /// Alive: not stopping and nothing has failed.
    pub fn healthy(&self) -> bool {
        !self.stopping
            && self
                .programs
                .iter()
                .all(|p| p.phase != Phase::Failed && p.phase != Phase::Stopped)
    }

    pub fn all_ready(&self) -> bool {
        self.healthy() && self.programs.iter().all(|p| p.ready)
    }

    pub fn running(&self, idx: usize) -> bool {
        self.programs[idx].phase == Phase::Running
    }
}

/// Shared between the supervisor and the endpoint.
#[derive(Debug, Clone)]
pub struct Board(Arc<Mutex<BoardState>>);

impl Board {
    pub fn new(programs: Vec<Entry>, restarts: u32) -> Board {
        Board(Arc::new(Mutex::new(BoardState {
            programs,
            started: Vec::new(),
            stopping: false,
            restarts,
        })))
    }

    pub fn lock(&self) -> MutexGuard<'_, BoardState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Serialize)]
struct ProgramView<'a> {
    name: &'a str,
    kind: Kind,
    state: Phase,
    ready: bool,
    pid: Option<i32>,
    restarts: u32,
    uptime_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    healthy: bool,
    ready: bool,
    stopping: bool,
    restarts: u32,
    programs: Vec<ProgramView<'a>>,
}

fn report(board: &Board, readiness: bool) -> (StatusCode, Json<serde_json::Value>) {
    let b = board.lock();
    let now = Instant::now();
    let (healthy, ready) = (b.healthy(), b.all_ready());
    let body = Report {
        healthy,
        ready,
        stopping: b.stopping,
        restarts: b.restarts,
        programs: b
            .programs
            .iter()
            .map(|p| ProgramView {
                name: &p.name,
                kind: p.kind,
                state: p.phase,
                ready: p.ready,
                pid: p.pid,
                restarts: b.restarts,
                uptime_seconds: match (p.started, p.ran) {
                    (_, Some(ran)) => Some(round(ran)),
                    (Some(s), None) => Some(round(now - s)),
                    _ => None,
                },
            })
            .collect(),
    };
    let ok = if readiness { ready } else { healthy };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(serde_json::to_value(body).unwrap_or_default()))
}

fn round(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Serves the endpoint on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, board: Board) {
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(|State(b): State<Board>| async move { report(&b, false) }),
        )
        .route(
            "/readyz",
            get(|State(b): State<Board>| async move { report(&b, true) }),
        )
        .with_state(board);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("health endpoint stopped: {e}");
    }
}
