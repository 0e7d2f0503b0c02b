//! Supervised programs by name: CPU, memory, threads, open files, uptime,
//! one `procstat` point per program summed over its processes (a master and
//! its workers), plus `procstat_lookup` saying whether it was found.

use serde::Deserialize;
use std::path::PathBuf;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use sysinfo::{Pid, Process, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use crate::line_protocol::Point;

#[derive(Debug)]
pub struct Procstat {
    programs: Vec<(String, Matcher)>,
    system: System,
    /// CPU ticks (user + system) of each matched process at the last round,
    /// keyed by pid and start time (a reused pid is another process), and
    /// when they were read: `cpu_usage` is the difference over the elapsed
    /// time.
    last_ticks: HashMap<(Pid, u64), u64>,
    last_round: Option<Instant>,
    /// Processes (pid, start time) whose command line and executable have
    /// been read: once each, kernel threads included (theirs are empty,
    /// which sysinfo's `OnlyIfNotSet` would read again every round).
    described: HashSet<(Pid, u64)>,
}

impl Procstat {
    pub fn new(programs: &[Program]) -> Self {
        Procstat {
            programs: programs
                .iter()
                .map(|p| (p.name().to_string(), p.matcher()))
                .collect(),
            system: System::new(),
            last_ticks: HashMap::new(),
            last_round: None,
            described: HashSet::new(),
        }
    }

    pub fn gather(&mut self) -> Vec<Point> {
        // Finding the programs needs only each process's name, parent and
        // start time (its /proc/<pid>/stat, which sysinfo reads whatever the
        // refresh kind) and, once per new process, its command line and
        // executable. Memory and CPU are read below for the matched
        // processes only, not for every process on the host. Threads are
        // left out (without_tasks): only processes count, and their thread
        // count comes from /proc/<pid>/stat.
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().without_tasks(),
        );
        let new: Vec<Pid> = self
            .system
            .processes()
            .values()
            .filter(|p| !self.described.contains(&(p.pid(), p.start_time())))
            .map(Process::pid)
            .collect();
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&new),
            false,
            ProcessRefreshKind::nothing()
                .with_cmd(UpdateKind::Always)
                .with_exe(UpdateKind::Always)
                .without_tasks(),
        );
        // Only the living: the dead drop out.
        self.described = self
            .system
            .processes()
            .values()
            .map(|p| (p.pid(), p.start_time()))
            .collect();
        let matched: Vec<(&str, Vec<Pid>)> = self
            .programs
            .iter()
            .map(|(name, matcher)| (name.as_str(), find(&self.system, matcher)))
            .collect();
        let mut all: Vec<Pid> = matched.iter().flat_map(|(_, p)| p.clone()).collect();
        all.sort_unstable();
        all.dedup();
        // A process that dies between the listing and this refresh keeps
        // the values it was listed with for this round (sysinfo only marks
        // it), and is gone from the next listing.
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&all),
            false,
            ProcessRefreshKind::nothing().with_memory().without_tasks(),
        );

        // CPU usage is computed here rather than by sysinfo: sysinfo's
        // compares a process's times between two consecutive refreshes of
        // any kind, and the cheap listing above is one, so it would measure
        // the few microseconds between the two refreshes. Same definition:
        // % of one CPU since the last round, 0 on a process's first round.
        let round = Instant::now();
        let elapsed = self
            .last_round
            .map(|t| round.duration_since(t).as_secs_f64());
        let mut ticks_now = HashMap::new();

        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut points = Vec::new();
        for (name, pids) in matched {
            points.push(
                Point::new("procstat_lookup")
                    .tag("process_name", name)
                    .field("pid_count", pids.len() as u64)
                    .field("running", i64::from(!pids.is_empty())),
            );
            if pids.is_empty() {
                continue;
            }
            let procs: Vec<&Process> = pids
                .iter()
                .filter_map(|p| self.system.process(*p))
                .collect();
            let Some(oldest) = procs.iter().min_by_key(|p| (p.start_time(), p.pid())) else {
                continue;
            };
            let mut cpu = 0.0f64;
            let (mut rss, mut vms, mut threads, mut fds) = (0u64, 0u64, 0u64, 0u64);
            let (mut user, mut system) = (0.0f64, 0.0f64);
            for p in &procs {
                rss += p.memory();
                vms += p.virtual_memory();
                fds += p.open_files().unwrap_or(0) as u64;
                if let Some(stat) = proc_stat(p.pid()) {
                    threads += stat.threads;
                    user += ticks_to_s(stat.utime);
                    system += ticks_to_s(stat.stime);
                    let key = (p.pid(), p.start_time());
                    let ticks = stat.utime + stat.stime;
                    if let (Some(&before), Some(elapsed)) = (self.last_ticks.get(&key), elapsed) {
                        // Ticks are 1/100 s: ticks per second is percent.
                        cpu += ticks.saturating_sub(before) as f64 / elapsed;
                    }
                    ticks_now.insert(key, ticks);
                }
            }
            let start = oldest.start_time();
            points.push(
                Point::new("procstat")
                    .tag("process_name", name)
                    .field("pid", u64::from(oldest.pid().as_u32()))
                    .field("pid_count", procs.len() as u64)
                    .field("cpu_usage", cpu)
                    .field("cpu_time_user", user)
                    .field("cpu_time_system", system)
                    .field("memory_rss", rss)
                    .field("memory_vms", vms)
                    .field("num_threads", threads)
                    .field("num_fds", fds)
                    .field("created_at", start.saturating_mul(1_000_000_000))
                    .field("uptime", now_s.saturating_sub(start)),
            );
        }
        // Only this round's processes: the dead ones drop out.
        self.last_ticks = ticks_now;
        self.last_round = Some(round);
        points
    }
}

/// The pids a matcher selects.
fn find(system: &System, matcher: &Matcher) -> Vec<Pid> {
    let procs = system.processes();
    match matcher {
        Matcher::Name(name) => procs
            .values()
            .filter(|p| {
                p.name() == name.as_str()
                    || p.exe()
                        .and_then(Path::file_name)
                        .is_some_and(|f| f == name.as_str())
                    || p.cmd()
                        .first()
                        .and_then(|c| Path::new(c).file_name())
                        .is_some_and(|f| f == name.as_str())
            })
            .map(Process::pid)
            .collect(),
        Matcher::Pattern(pattern) => {
            let me = sysinfo::get_current_pid().ok();
            procs
                .values()
                .filter(|p| Some(p.pid()) != me)
                .filter(|p| {
                    let cmd: Vec<String> = p
                        .cmd()
                        .iter()
                        .map(|c| c.to_string_lossy().into_owned())
                        .collect();
                    cmd.join(" ").contains(pattern.as_str())
                })
                .map(Process::pid)
                .collect()
        }
        Matcher::PidFile(path) => {
            let Some(root) = std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .map(Pid::from_u32)
                .filter(|p| procs.contains_key(p))
            else {
                return Vec::new();
            };
            // The process and all its descendants.
            let mut found: HashSet<Pid> = HashSet::from([root]);
            loop {
                let before = found.len();
                for p in procs.values() {
                    if p.parent().is_some_and(|pp| found.contains(&pp)) {
                        found.insert(p.pid());
                    }
                }
                if found.len() == before {
                    break;
                }
            }
            found.into_iter().collect()
        }
    }
}

struct ProcStat {
    threads: u64,
    /// Ticks of 1/100 s (USER_HZ on Linux).
    utime: u64,
    stime: u64,
}

fn ticks_to_s(ticks: u64) -> f64 {
    ticks as f64 / 100.0
}

/// Thread count and CPU times from `/proc/<pid>/stat`.
fn proc_stat(pid: Pid) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15, threads 20.
    let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        utime: num(14)?,
        stime: num(15)?,
        threads: num(20)?,
    })
}
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcstatInput {
    pub programs: Vec<Program>,
}

/// A supervised program: a bare name, or a table saying how to find it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Program {
    Name(String),
    Spec(ProgramSpec),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramSpec {
    /// The `process_name` tag.
    pub name: String,
    /// The program's pid file; the process and its descendants count.
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    /// A substring of the command line (arguments joined by spaces).
    #[serde(default)]
    pub pattern: Option<String>,
}

/// How a program's processes are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// Process name (comm) or executable file name equals this.
    Name(String),
    PidFile(PathBuf),
    Pattern(String),
}

impl Program {
    pub fn name(&self) -> &str {
        match self {
            Program::Name(n) => n,
            Program::Spec(s) => &s.name,
        }
    }

    pub fn matcher(&self) -> Matcher {
        match self {
            Program::Name(n) => Matcher::Name(n.clone()),
            Program::Spec(ProgramSpec {
                pid_file: Some(p), ..
            }) => Matcher::PidFile(p.clone()),
            Program::Spec(ProgramSpec {
                pattern: Some(p), ..
            }) => Matcher::Pattern(p.clone()),
            Program::Spec(s) => Matcher::Name(s.name.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::line_protocol::FieldValue;

    fn field(points: &[Point], key: &str) -> f64 {
        let p = points.iter().find(|p| p.measurement == "procstat").unwrap();
        match &p.fields.iter().find(|(k, _)| k == key).unwrap().1 {
            FieldValue::Float(v) => *v,
            FieldValue::Integer(v) => *v as f64,
            v => panic!("{key}: {v:?}"),
        }
    }

    /// Memory and CPU are read for the matched process although the listing
    /// reads neither: CPU usage is 0 on the first round, then the busy
    /// loop's share of a CPU since that round.
    #[test]
    fn matched_process_cpu_and_memory() {
        let marker = format!("procstat-unit-{}", std::process::id());
        let mut busy = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done", &marker])
            .spawn()
            .unwrap();
        let mut input = Procstat::new(&[Program::Spec(ProgramSpec {
            name: "busy".into(),
            pid_file: None,
            pattern: Some(marker),
        })]);
        let first = input.gather();
        std::thread::sleep(std::time::Duration::from_secs(2));
        let second = input.gather();
        busy.kill().unwrap();
        busy.wait().unwrap();

        assert_eq!(field(&first, "pid"), f64::from(busy.id()));
        assert_eq!(field(&first, "cpu_usage"), 0.0);
        assert!(field(&first, "memory_rss") > 0.0);
        assert!(field(&first, "memory_vms") >= field(&first, "memory_rss"));
        // One core busy, on a machine that may be shared: well above 0, at
        // most a little over 100 (tick rounding).
        let cpu = field(&second, "cpu_usage");
        assert!((20.0..=110.0).contains(&cpu), "cpu_usage {cpu}");
        assert!(field(&second, "cpu_time_user") + field(&second, "cpu_time_system") > 0.3);
    }
}
