//! Starting programs and reaping every child, ours and adopted orphans.
//!
//! supervise reaps with `waitpid(-1)` on every SIGCHLD, so it never waits on
//! one child handle: each pid it starts is registered in [`Children`], and a
//! reaped pid that is not registered is an orphan adopted as PID 1 or child
//! subreaper. Everything runs on one thread, so a child is always registered
//! before the reaper can see it exit.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid, User};
use tokio::sync::oneshot;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(Signal),
}

impl Exit {
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with status {c}"),
            Exit::Signal(s) => write!(f, "was killed by signal {}", s.as_str()),
        }
    }
}

/// A resolved `user`: ids and supplementary groups, looked up before
/// anything starts so that an unknown user stops the start.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    pub groups: Vec<Gid>,
    pub home: PathBuf,
}

impl Credentials {
    pub fn lookup(name: &str) -> Result<Credentials, String> {
        let user = User::from_name(name)
            .map_err(|e| format!("user {name:?}: {e}"))?
            .ok_or_else(|| format!("user {name:?} does not exist"))?;
        let cname = CString::new(name).map_err(|_| format!("user {name:?}: bad name"))?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid)
            .map_err(|e| format!("user {name:?}: groups: {e}"))?;
        Ok(Credentials {
            name: name.to_owned(),
            uid: user.uid,
            gid: user.gid,
            groups,
            home: user.dir,
        })
    }
}

/// What to run.
#[derive(Debug)]
pub struct Spec<'a> {
    pub command: &'a [String],
    pub env: &'a std::collections::BTreeMap<String, String>,
    pub directory: Option<&'a PathBuf>,
    pub credentials: Option<&'a Credentials>,
    /// Pipe stdout/stderr back (programs) or discard them (probes).
    pub capture: bool,
}

/// A started child.
#[derive(Debug)]
pub struct Started {
    pub pid: Pid,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub exit: oneshot::Receiver<Exit>,
}

/// The registry of children supervise started and waits for.
#[derive(Debug, Clone, Default)]
pub struct Children {
    waiting: Arc<Mutex<HashMap<i32, oneshot::Sender<Exit>>>>,
}

/// One pass of the reaper.
#[derive(Debug, Default)]
pub struct Reaped {
    /// Adopted orphans reaped: pid and how they ended.
    pub orphans: Vec<(Pid, Exit)>,
}

impl Children {
    /// Starts `spec` in its own process group, registered for reaping.
    pub fn spawn(&self, spec: &Spec<'_>) -> std::io::Result<Started> {
        let mut cmd = Command::new(&spec.command[0]);
        cmd.args(&spec.command[1..])
            .stdin(Stdio::null())
            // Its own group: a signal to the group reaches its children too.
            .process_group(0);
        if spec.capture {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        } else {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        if let Some(dir) = spec.directory {
            cmd.current_dir(dir);
        }
        if let Some(c) = spec.credentials {
            cmd.env("HOME", &c.home)
                .env("USER", &c.name)
                .env("LOGNAME", &c.name);
            drop_privileges(&mut cmd, c);
        }
        cmd.envs(spec.env);
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let mut child = cmd.spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        let (tx, exit) = oneshot::channel();
        waiting.insert(pid.as_raw(), tx);
        Ok(Started {
            pid,
            stdout: child.stdout.take().map(OwnedFd::from),
            stderr: child.stderr.take().map(OwnedFd::from),
            exit,
        })
        // `child` is dropped without waiting: the reaper collects it.
    }

    /// Reaps every child that has ended, ours and orphans, without blocking.
    pub fn reap(&self) -> Reaped {
        let mut reaped = Reaped::default();
        loop {
            let (pid, exit) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, Exit::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, Exit::Signal(sig)),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Err(Errno::EINTR) => continue,
                Ok(_) => continue,
                Err(_) => break,
            };
            let owner = self
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&pid.as_raw());
            match owner {
                Some(tx) => {
                    let _ = tx.send(exit);
                }
                None => reaped.orphans.push((pid, exit)),
            }
        }
        reaped
    }
}

/// Sends `sig` to the process group led by `pid`; a group already gone is fine.
pub fn signal_group(pid: Pid, sig: Signal) {
    let _ = killpg(pid, sig);
}

/// Switches to the user's groups, group and user in the child, right before
/// exec. std's `CommandExt::uid` would clear the supplementary groups, which
/// servers such as nginx's workers need, so all three are set here.
#[allow(unsafe_code)]
fn drop_privileges(cmd: &mut Command, c: &Credentials) {
    let groups = c.groups.clone();
    let (uid, gid) = (c.uid, c.gid);
    // SAFETY: the closure runs between fork and exec; it only makes the
    // setgroups/setgid/setuid system calls (async-signal-safe) on data
    // prepared before the fork, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setgroups(&groups)?;
            nix::unistd::setgid(gid)?;
            nix::unistd::setuid(uid)?;
            Ok(())
        });
    }
}
