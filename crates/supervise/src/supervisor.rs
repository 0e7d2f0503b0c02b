//! The run: start programs in dependency order, watch them, forward
//! signals, and stop everything in reverse start order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::signal::unix::{Signal as SignalStream, SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::time::sleep_until;
use tracing::{info, warn};

use crate::config::{Config, Kind};
use crate::health::{Board, Phase};
use crate::output::{Output, Stream};
use crate::process::{Children, Credentials, Exit, Spec};
use crate::readiness;

/// Pause between two failed readiness attempts.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How long the output readers get to pass on the last lines at exit.
const READER_WAIT: Duration = Duration::from_millis(500);
/// How long SIGKILLed programs get to disappear.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// What program tasks tell the main loop.
#[derive(Debug)]
enum Event {
    /// The program ended; the board is already updated.
    Ended(usize),
    /// It could not be started, or never became ready.
    Failed(usize, String),
}

/// Why supervise stops.
#[derive(Debug)]
enum Reason {
    Signal(Signal),
    Failure,
    AllDone,
}

struct Shared {
    config: Config,
    credentials: Vec<Option<Credentials>>,
    board: Board,
    children: Children,
    output: Output,
    events: mpsc::UnboundedSender<Event>,
    /// Bumped whenever a program becomes ready or supervise starts stopping.
    changed: watch::Sender<()>,
    /// The output readers, waited for briefly at exit so last lines get out.
    readers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

struct Signals {
    child: SignalStream,
    term: SignalStream,
    int: SignalStream,
    hup: SignalStream,
    quit: SignalStream,
}

/// Runs the programs of `config` until one ends or a stop signal arrives;
/// `restarts` (earlier starts in this pod) goes on the health report.
/// Returns the exit code: 0 after a stop signal or when every program (all
/// oneshots) completed, 1 when a program ended or failed.
pub async fn supervise(
    config: Config,
    credentials: Vec<Option<Credentials>>,
    output: Output,
    listener: tokio::net::TcpListener,
    restarts: u32,
) -> std::io::Result<i32> {
    // Handlers first, so that no SIGCHLD or SIGTERM is missed.
    let mut signals = Signals {
        child: signal(SignalKind::child())?,
        term: signal(SignalKind::terminate())?,
        int: signal(SignalKind::interrupt())?,
        hup: signal(SignalKind::hangup())?,
        quit: signal(SignalKind::quit())?,
    };
    let board = Board::new(
        config
            .programs
            .iter()
            .map(|p| crate::health::Entry {
                name: p.name.clone(),
                kind: p.kind,
                phase: Phase::Waiting,
                ready: false,
                pid: None,
                started: None,
                ran: None,
            })
            .collect(),
        restarts,
    );
    if let Ok(addr) = listener.local_addr() {
        info!(
            "supervising {} program(s); health endpoint on http://{addr}/healthz and /readyz",
            config.programs.len()
        );
    }
    tokio::spawn(crate::health::serve(listener, board.clone()));
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (changed, _) = watch::channel(());
    let shared = Arc::new(Shared {
        config,
        credentials,
        board,
        children: Children::default(),
        output,
        events: events_tx,
        changed,
        readers: Default::default(),
    });
    log_orphans(&shared.children);

    let order = shared.config.start_order().unwrap_or_default();
    for idx in order {
        tokio::spawn(run_program(shared.clone(), idx));
    }

    let reason = loop {
        tokio::select! {
            _ = signals.child.recv() => log_orphans(&shared.children),
            _ = signals.term.recv() => break Reason::Signal(Signal::SIGTERM),
            _ = signals.int.recv() => break Reason::Signal(Signal::SIGINT),
            _ = signals.hup.recv() => forward(&shared, Signal::SIGHUP),
            _ = signals.quit.recv() => forward(&shared, Signal::SIGQUIT),
            Some(event) = events.recv() => {
                if let Some(reason) = judge(&shared, event) {
                    break reason;
                }
            }
        }
    };
    let code = match reason {
        Reason::Signal(sig) => {
            info!("received {}: stopping", sig.as_str());
            stop(&shared, &mut signals, &mut events, sig).await;
            0
        }
        Reason::Failure => {
            stop(&shared, &mut signals, &mut events, Signal::SIGTERM).await;
            1
        }
        Reason::AllDone => {
            info!("every program has completed");
            stop(&shared, &mut signals, &mut events, Signal::SIGTERM).await;
            0
        }
    };
    // Every group is gone, so the pipes are closed; let the readers finish.
    let readers = std::mem::take(&mut *shared.readers.lock().unwrap_or_else(|e| e.into_inner()));
    let _ = tokio::time::timeout(READER_WAIT, async {
        for r in readers {
            let _ = r.await;
        }
    })
    .await;
    info!("exiting with status {code}");
    Ok(code)
}

/// Decides what an event means for the whole container.
fn judge(shared: &Shared, event: Event) -> Option<Reason> {
    match event {
        Event::Failed(idx, why) => {
            warn!("{}: {why}; stopping", shared.config.programs[idx].name);
            Some(Reason::Failure)
        }
        Event::Ended(idx) => {
            let b = shared.board.lock();
            match b.programs[idx].phase {
                Phase::Failed => {
                    warn!(
                        "{} ended: stopping everything so that the container is restarted",
                        b.programs[idx].name
                    );
                    Some(Reason::Failure)
                }
                _ if b.programs.iter().all(|p| p.phase == Phase::Completed) => {
                    Some(Reason::AllDone)
                }
                _ => None,
            }
        }
    }
}

fn forward(shared: &Shared, sig: Signal) {
    let b = shared.board.lock();
    for p in b.programs.iter().filter(|p| p.phase == Phase::Running) {
        if let Some(pid) = p.pid {
            info!("forwarding {} to {} (pid {pid})", sig.as_str(), p.name);
            crate::process::signal_group(Pid::from_raw(pid), sig);
        }
    }
}

fn log_orphans(children: &Children) {
    for (pid, exit) in children.reap().orphans {
        info!("reaped orphan pid {pid}, which {exit}");
    }
}

/// One program's life: wait for its `after`, start, check readiness, wait.
async fn run_program(shared: Arc<Shared>, idx: usize) {
    let program = &shared.config.programs[idx];
    let mut changed = shared.changed.subscribe();
    loop {
        {
            let b = shared.board.lock();
            if b.stopping {
                return;
            }
            let deps_ready = program
                .after
                .iter()
                .all(|dep| b.programs.iter().any(|p| &p.name == dep && p.ready));
            if deps_ready {
                break;
            }
        }
        if changed.changed().await.is_err() {
            return;
        }
    }

    let started = {
        let mut b = shared.board.lock();
        if b.stopping {
            return;
        }
        let spawned = shared.children.spawn(&Spec {
            command: &program.command,
            env: &program.env,
            directory: program.directory.as_ref(),
            credentials: shared.credentials[idx].as_ref(),
            capture: true,
        });
        match spawned {
            Ok(s) => {
                let e = &mut b.programs[idx];
                e.phase = Phase::Running;
                e.pid = Some(s.pid.as_raw());
                e.started = Some(Instant::now());
                b.started.push((idx, s.pid.as_raw()));
                s
            }
            Err(e) => {
                drop(b);
                let _ = shared.events.send(Event::Failed(
                    idx,
                    format!("cannot start {:?}: {e}", program.command[0]),
                ));
                return;
            }
        }
    };
    let began = Instant::now();
    let pid = started.pid;
    info!("started {} ({}, pid {pid})", program.name, program.kind);
    for (fd, stream) in [
        (started.stdout, Stream::Stdout),
        (started.stderr, Stream::Stderr),
    ] {
        if let Some(fd) = fd {
            match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
                Ok(pipe) => {
                    tokio::spawn(shared.output.clone().pass_through(
                        program.name.clone(),
                        stream,
                        pipe,
                    ));
                }
                Err(e) => warn!("{}: cannot read its output: {e}", program.name),
            }
        }
    }

    let mut exit = started.exit;
    // Set when the exit arrives inside a select (a oneshot receiver must
    // not be polled again once it has answered).
    let mut status: Option<Option<Exit>> = None;
    if program.kind == Kind::Service {
        match &program.ready {
            None => mark_ready(&shared, idx),
            Some(check) => {
                let deadline = tokio::time::Instant::now()
                    + Duration::from_secs(program.ready_timeout_seconds);
                let mut last: String;
                loop {
                    tokio::select! {
                        result = readiness::probe(check, &shared.children) => match result {
                            Ok(()) => {
                                info!("{} is ready after {:.2}s", program.name, began.elapsed().as_secs_f64());
                                mark_ready(&shared, idx);
                                break;
                            }
                            Err(e) => last = e,
                        },
                        r = &mut exit => {
                            status = Some(r.ok());
                            break;
                        }
                    }
                    if tokio::time::Instant::now() >= deadline {
                        let _ = shared.events.send(Event::Failed(
                            idx,
                            format!(
                                "not ready after {} s (last check: {last})",
                                program.ready_timeout_seconds
                            ),
                        ));
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(PROBE_INTERVAL) => {}
                        r = &mut exit => {
                            status = Some(r.ok());
                            break;
                        }
                    }
                }
            }
        }
    }
    let status = match status {
        Some(s) => s,
        None => exit.await.ok(),
    };
    ended(&shared, idx, status, began.elapsed());
}

fn mark_ready(shared: &Shared, idx: usize) {
    shared.board.lock().programs[idx].ready = true;
    shared.changed.send_replace(());
}

fn ended(shared: &Shared, idx: usize, status: Option<Exit>, ran: Duration) {
    let program = &shared.config.programs[idx];
    let mut b = shared.board.lock();
    let stopping = b.stopping;
    let e = &mut b.programs[idx];
    let pid = e.pid.take().unwrap_or(0);
    e.ran = Some(ran);
    let how = status.map_or_else(|| "ended".to_string(), |s| s.to_string());
    let kind = program.kind;
    let msg = format!(
        "{} ({kind}, pid {pid}) {how} after {:.3}s",
        program.name,
        ran.as_secs_f64()
    );
    let success = status.is_some_and(Exit::success);
    e.phase = if program.kind == Kind::Oneshot && success {
        e.ready = true;
        Phase::Completed
    } else if stopping {
        Phase::Stopped
    } else {
        Phase::Failed
    };
    let phase = e.phase;
    drop(b);
    match phase {
        Phase::Failed => warn!("{msg}"),
        _ => info!("{msg}"),
    }
    if phase == Phase::Completed {
        shared.changed.send_replace(());
    }
    let _ = shared.events.send(Event::Ended(idx));
}

/// Signals running programs in reverse start order, each waited for until
/// the shared grace period ends, then SIGKILLs what is left.
async fn stop(
    shared: &Shared,
    signals: &mut Signals,
    events: &mut mpsc::UnboundedReceiver<Event>,
    sig: Signal,
) {
    let grace = Duration::from_secs(shared.config.stop.grace_seconds);
    let order: Vec<usize> = {
        let mut b = shared.board.lock();
        b.stopping = true;
        b.started.iter().rev().map(|&(i, _)| i).collect()
    };
    shared.changed.send_replace(());
    let deadline = tokio::time::Instant::now() + grace;
    for &idx in &order {
        let pid = shared.board.lock().programs[idx].pid;
        let Some(pid) = pid.filter(|_| shared.board.lock().running(idx)) else {
            continue;
        };
        info!(
            "stopping {} (pid {pid}) with {}",
            shared.config.programs[idx].name,
            sig.as_str()
        );
        crate::process::signal_group(Pid::from_raw(pid), sig);
        wait_until(shared, signals, events, deadline, |b| !b.running(idx)).await;
    }
    let left: Vec<(usize, i32)> = {
        let b = shared.board.lock();
        order
            .iter()
            .filter(|&&i| b.running(i))
            .filter_map(|&i| b.programs[i].pid.map(|p| (i, p)))
            .collect()
    };
    for &(idx, pid) in &left {
        warn!(
            "{} (pid {pid}) still running after {} s: SIGKILL",
            shared.config.programs[idx].name,
            grace.as_secs()
        );
        crate::process::signal_group(Pid::from_raw(pid), Signal::SIGKILL);
    }
    if !left.is_empty() {
        let until = tokio::time::Instant::now() + KILL_WAIT;
        wait_until(shared, signals, events, until, |b| {
            order.iter().all(|&i| !b.running(i))
        })
        .await;
    }
    // What the programs left behind in their groups goes too.
    let groups: Vec<i32> = shared
        .board
        .lock()
        .started
        .iter()
        .map(|&(_, pid)| pid)
        .collect();
    for pid in groups {
        crate::process::signal_group(Pid::from_raw(pid), Signal::SIGKILL);
    }
    log_orphans(&shared.children);
}

async fn wait_until(
    shared: &Shared,
    signals: &mut Signals,
    events: &mut mpsc::UnboundedReceiver<Event>,
    deadline: tokio::time::Instant,
    done: impl Fn(&crate::health::BoardState) -> bool,
) {
    loop {
        if done(&shared.board.lock()) {
            return;
        }
        tokio::select! {
            _ = signals.child.recv() => log_orphans(&shared.children),
            _ = signals.hup.recv() => forward(shared, Signal::SIGHUP),
            _ = signals.quit.recv() => forward(shared, Signal::SIGQUIT),
            _ = events.recv() => {}
            _ = sleep_until(deadline) => return,
        }
    }
}
