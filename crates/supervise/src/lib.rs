//! `supervise`: PID 1 of every image.
//!
//! Started as the image's entrypoint (`supervise [--config FILE]`, default
//! `/etc/supervise.toml`, or `$SUPERVISE_CONFIG`), it renders the config
//! templates, starts the container's programs in dependency order, passes
//! their output through with a name prefix, reaps every zombie, serves a
//! health endpoint for Kubernetes' probes and, as soon as any service ends
//! or a oneshot fails, stops everything and exits non-zero so that the
//! container is restarted. `supervise check-config FILE` validates a config
//! and starts nothing.
//!
//! The config file:
//!
//! ```toml
//! [health]
//! listen = "0.0.0.0:9901"        # default
//! restarts_file = "/run/supervise/restarts"   # optional; see below
//!
//! [stop]
//! grace_seconds = 10             # SIGTERM, then SIGKILL after this long
//!
//! [[template]]                   # rendered before any program starts
//! source = "/etc/nginx/templates/default.conf"
//! target = "/etc/nginx/http.d/default.conf"
//! mode = "0640"                  # optional
//! owner = "nginx"                # optional: "user" or "user:group"
//! verbatim = false               # optional: true copies byte for byte
//!
//! [[program]]
//! name = "php-fpm"
//! command = ["/usr/sbin/php-fpm83", "-F"]
//! kind = "service"               # default; or "oneshot" (must exit 0)
//! user = "nobody"                # optional
//! directory = "/"                # optional
//! env = { PHP_INI_SCAN_DIR = "/etc/php83/conf.d" }
//! ready = { unix = "/run/php-fpm.sock" }   # or tcp = "127.0.0.1:9000",
//!                                           # http = "http://127.0.0.1:8080/", command = ["..."]
//!
//! [[program]]
//! name = "nginx"
//! command = ["/usr/sbin/nginx", "-g", "daemon off;"]
//! after = ["php-fpm"]            # starts once php-fpm is ready (a oneshot: has exited 0)
//! ```
//!
//! Template placeholders are `${VAR}`: the value of the environment variable
//! `VAR` or, if `VAR_FILE` is set, the contents of that file (one trailing
//! line end removed; an empty file is an error, as for every secret in the
//! workspace: [`daemon::secret`]). A placeholder with no value is an error
//! naming the file, the line and the variable. `$${` stands for a literal `${`; `$name`
//! without braces (nginx variables) is left alone. Every template is
//! rendered in memory first, then written (missing parent directories
//! created, temp file + rename, mode 0644 unless `mode` says otherwise,
//! owned by `owner` when given). A `verbatim` template is copied as it is:
//! that is how a mounted Secret (root's, mode 0400) becomes a private copy
//! that only the program needing it can read.
//!
//! Anything wrong before the start (config, template, unknown `user`,
//! health address in use) is reported on stderr and supervise exits 2 with
//! nothing started. `check-config FILE` checks the file itself (fields,
//! names, `after` targets and cycles); `--render` also renders the templates
//! in memory; users are only looked up at start, where the image has them.
//! A oneshot may not have a `ready` check: it is ready when it exits 0.
//!
//! Behaviour, in short:
//! - Programs start in `after` order; one waits until everything in its
//!   `after` is ready (a service: its `ready` check passes, or it has
//!   started when it has none; a oneshot: it has exited 0). A `ready` check
//!   is retried every 100 ms for `ready_timeout_seconds` (optional, 120).
//! - Each program runs in its own process group, stdin `/dev/null`, stdout
//!   and stderr passed through line by line as `name | line` on supervise's
//!   stdout and stderr. Lines that cannot be queued because nobody reads
//!   supervise's output are dropped and counted, never blocking a program.
//!   supervise's own lines start with `supervise | `.
//! - A service that exits (any status), a oneshot that fails, a program
//!   that cannot start or never becomes ready: supervise stops the rest and
//!   exits 1. SIGTERM/SIGINT: stops everything, exits 0. SIGHUP/SIGQUIT are
//!   forwarded to every running program's group.
//! - Stop: each running program's group gets the signal in reverse start
//!   order and is waited for; `grace_seconds` is shared by the whole stop,
//!   after which what is left gets SIGKILL.
//! - Every zombie is reaped, adopted orphans included: as PID 1, or as a
//!   child subreaper when started as any other pid.
//! - `GET /healthz`: 200 while nothing has ended or failed and supervise is
//!   not stopping, else 503. `GET /readyz`: 200 once every program is ready
//!   and healthy. Body: `{"healthy", "ready", "stopping", "restarts",
//!   "programs": [{"name", "kind", "state", "ready", "pid", "restarts",
//!   "uptime_seconds"}]}`, where `state` is `waiting` (for its `after`),
//!   `running`, `completed` (a oneshot that exited 0), `failed` or
//!   `stopped` (ended during a stop); `restarts` is explained next.
//!
//! Restarts: supervise never restarts a program itself; when it exits,
//! Kubernetes restarts the whole container. So it counts its own starts in
//! a restarts file that outlives the container but not the pod (in
//! Kubernetes an `emptyDir` volume, `medium: Memory`): the file named by
//! `$SUPERVISE_RESTARTS_FILE` when set and not empty (the pod knows where
//! its volume is mounted), else by `[health] restarts_file`; it must be an
//! absolute path (else exit 2). Once nothing can stop the start any more
//! (config, templates, users and health address are fine), supervise reads
//! the count (a missing file is 0), reports it as `restarts`, top-level and
//! for every program, and writes count + 1 (temp file + rename) before any
//! program starts. A start that fails with exit 2 is not counted: it started
//! nothing. An unreadable or garbled file is a warning and the count starts
//! again from 0; a failed write is a warning too. Neither stops supervise:
//! the file outlives the container, so exiting would fail every later
//! restart the same way until the pod is deleted, taking the service down
//! over a diagnostic figure. The directory is never created: a missing one
//! means the volume is not mounted. With no restarts file, `restarts` is 0.

pub mod config;
pub mod health;
pub mod output;
pub mod process;
pub mod readiness;
pub mod restarts;
pub mod supervisor;
pub mod template;

use std::path::Path;
use std::time::Duration;

pub use config::{Config, ConfigError};
pub use template::TemplateError;

/// Why supervise could not start (nothing was started).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{config}: program {program:?}: {message}")]
    User {
        config: std::path::PathBuf,
        program: String,
        message: String,
    },
    #[error("health endpoint {addr}: cannot listen: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("${var} = {path:?}: the restarts file must be an absolute path", var = restarts::ENV)]
    RestartsFile { path: std::path::PathBuf },
    #[error("cannot start the runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Validates the config at `path` without starting anything; with
/// `render`, also renders every template in memory (needs the variables).
/// Returns a one-line summary.
pub fn check_config(path: &Path, render: bool) -> Result<String, Error> {
    let config = Config::load(path)?;
    if render {
        template::render_all(&config.templates, &template::Environment)?;
    }
    let order = config.start_order().unwrap_or_default();
    let names: Vec<&str> = order
        .iter()
        .map(|&i| config.programs[i].name.as_str())
        .collect();
    Ok(format!(
        "{}: ok: {} program(s), start order {}; {} template(s)",
        path.display(),
        names.len(),
        names.join(", "),
        config.templates.len()
    ))
}

/// Runs supervise with the config at `path`; returns the exit code.
pub fn run(path: &Path) -> Result<i32, Error> {
    let config = Config::load(path)?;
    let credentials = config
        .programs
        .iter()
        .map(|p| {
            p.user
                .as_deref()
                .map(process::Credentials::lookup)
                .transpose()
                .map_err(|message| Error::User {
                    config: path.to_owned(),
                    program: p.name.clone(),
                    message,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rendered = template::render_all(&config.templates, &template::Environment)?;
    template::check_owners(&rendered)?;
    let restarts_file = restarts::path(config.health.restarts_file.as_deref());
    if let Some(path) = restarts_file.as_ref().filter(|p| !p.is_absolute()) {
        return Err(Error::RestartsFile { path: path.clone() });
    }

    // One thread: the reaper and every spawn run on it, so a child is always
    // registered before its exit can be reaped (see `process`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(config.health.listen))
        .map_err(|source| Error::Listen {
            addr: config.health.listen,
            source,
        })?;
    template::write_all(&rendered)?;

    if nix::unistd::getpid().as_raw() != 1 {
        // Orphans of our programs are re-parented to us, not to init.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            eprintln!("supervise | cannot become a child subreaper: {e}");
        }
    }
    let (output, writer) = output::start();
    daemon::log::init_bare(output::LogWriter(output.clone()));
    // Counted only now: a start that failed above started nothing.
    let restarts = restarts_file.as_deref().map_or(0, restarts::record);
    let code = runtime.block_on(supervisor::supervise(
        config,
        credentials,
        output.clone(),
        listener,
        restarts,
    ))?;
    runtime.shutdown_timeout(Duration::from_millis(100));
    writer.finish(output, Duration::from_secs(2));
    Ok(code)
}
