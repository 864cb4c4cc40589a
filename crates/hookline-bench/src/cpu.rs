//! CPU time and memory read from `/proc`: of single processes (the
//! services, the receiver, the benchmark itself), of the whole PostgreSQL
//! cluster and of RabbitMQ. A scenario takes a [`Snapshot`] before and after
//! its measured window; the difference is the CPU each part spent in it.
//!
//! Postgres: the postmaster (a `postgres` process whose parent is not
//! `postgres`) listening on port 5432, its own utime + stime, its cutime +
//! cstime (backends that have exited and been reaped), plus utime + stime
//! of its live children (backends, checkpointer, WAL writer, autovacuum…).
//! A backend that exits inside the window moves from the last term to the
//! second, so the sum stays continuous. RabbitMQ: the `beam.smp` listening
//! on port 5672, counted the same way (its live children are
//! `erl_child_setup` and `inet_gethost`). Only the servers the benchmark
//! uses count: other postmasters or brokers on the machine (a test suite's
//! private ones) do not. When the listener cannot be found (its sockets
//! are another user's), every such root process counts, with a warning.
//!
//! Both servers are the machine's, not the benchmark's: work other programs
//! give them during the window is counted too.

use std::{collections::BTreeMap, sync::OnceLock};

use serde::Serialize;

/// Clock ticks per second (`getconf CLK_TCK`, read once; 100 when it cannot
/// be read, the value on every Linux the benchmark runs on).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0)
            .unwrap_or(100.0)
    })
}

/// The fields of `/proc/<pid>/stat` the benchmark uses (times in ticks).
#[derive(Debug, Clone, Copy)]
struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

impl Stat {
    fn read(pid: u32) -> Option<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may hold spaces; the fields
        // after it start with the state (field 3 of the line).
        let (_, rest) = text.rsplit_once(") ")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        Some(Self {
            ppid: u32::try_from(field(4)?).ok()?,
            utime: field(14)?,
            stime: field(15)?,
            cutime: field(16)?,
            cstime: field(17)?,
        })
    }

    fn own(&self) -> u64 {
        self.utime + self.stime
    }

    fn with_reaped_children(&self) -> u64 {
        self.own() + self.cutime + self.cstime
    }
}

/// One process of the table.
#[derive(Debug)]
struct Process {
    pid: u32,
    comm: String,
    stat: Stat,
}

/// Every process readable now.
fn processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?.trim_end().to_owned();
            Some(Process { pid, comm, stat: Stat::read(pid)? })
        })
        .collect()
}

/// Every process named `comm` whose parent has another name: the roots of
/// such servers' process trees.
fn roots(table: &[Process], comm: &str) -> Vec<u32> {
    let name_of = |pid: u32| table.iter().find(|p| p.pid == pid).map(|p| p.comm.as_str());
    table.iter().filter(|p| p.comm == comm && name_of(p.stat.ppid) != Some(comm)).map(|p| p.pid).collect()
}

/// Socket inodes listening on TCP `port` (IPv4 or IPv6).
fn listening_inodes(port: u16) -> Vec<u64> {
    let suffix = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1, st (0A: LISTEN) field 3, inode field 9.
            let listening = fields.get(1).is_some_and(|a| a.ends_with(&suffix)) && fields.get(3) == Some(&"0A");
            if let Some(inode) = fields.get(9).and_then(|i| i.parse().ok()).filter(|_| listening) {
                inodes.push(inode);
            }
        }
    }
    inodes
}

/// Whether `pid` holds one of these sockets.
fn holds_socket(pid: u32, inodes: &[u64]) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().filter_map(|fd| std::fs::read_link(fd.path()).ok()).any(|target| {
        let target = target.to_string_lossy();
        let inode = target.strip_prefix("socket:[").and_then(|t| t.strip_suffix(']')).and_then(|i| i.parse().ok());
        inode.is_some_and(|i| inodes.contains(&i))
    })
}

/// The root processes of the Postgres and RabbitMQ servers the benchmark
/// uses, whose CPU a [`Snapshot`] counts.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Servers {
    pub(crate) postgres: Vec<u32>,
    pub(crate) rabbitmq: Vec<u32>,
}

impl Servers {
    /// The postmaster on port 5432 and the `beam.smp` on port 5672.
    pub(crate) fn find() -> Self {
        let table = processes();
        let pick = |comm: &str, port: u16| {
            let all = roots(&table, comm);
            let inodes = listening_inodes(port);
            let listening: Vec<u32> = all.iter().copied().filter(|&pid| holds_socket(pid, &inodes)).collect();
            if listening.is_empty() {
                eprintln!(
                    "  (no `{comm}` process found listening on port {port}; counting all {} of them: {all:?})",
                    all.len()
                );
                all
            } else {
                listening
            }
        };
        Self { postgres: pick("postgres", 5432), rabbitmq: pick("beam.smp", 5672) }
    }
}

/// Ticks of these root processes, their reaped children and their live ones.
fn server_ticks(table: &[Process], roots: &[u32]) -> u64 {
    table
        .iter()
        .filter(|p| roots.contains(&p.pid))
        .map(|root| {
            let children: u64 = table.iter().filter(|p| p.stat.ppid == root.pid).map(|p| p.stat.own()).sum();
            root.stat.with_reaped_children() + children
        })
        .sum()
}

/// CPU seconds used so far by the Postgres cluster, by RabbitMQ, and by each
/// of some processes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) postgres: f64,
    pub(crate) rabbitmq: f64,
    by_pid: BTreeMap<u32, f64>,
}

impl Snapshot {
    /// Reads the process table once: `servers`, and `pids`, the single
    /// processes to note (utime + stime each).
    pub(crate) fn take(servers: &Servers, pids: impl IntoIterator<Item = u32>) -> Self {
        let table = processes();
        let ticks = ticks_per_second();
        let by_pid = pids
            .into_iter()
            .map(|pid| {
                let own = table.iter().find(|p| p.pid == pid).map_or(0, |p| p.stat.own());
                (pid, own as f64 / ticks)
            })
            .collect();
        Self {
            postgres: server_ticks(&table, &servers.postgres) as f64 / ticks,
            rabbitmq: server_ticks(&table, &servers.rabbitmq) as f64 / ticks,
            by_pid,
        }
    }

    /// CPU seconds `pid` used between `before` and this snapshot.
    pub(crate) fn since(&self, before: &Self, pid: u32) -> f64 {
        let at = |s: &Self| s.by_pid.get(&pid).copied().unwrap_or(0.0);
        (at(self) - at(before)).max(0.0)
    }
}

/// Peak resident set size (`VmHWM`) of a process, in MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's own line of `/proc/<pid>/stat` parses, command name
    /// and all.
    #[test]
    fn reads_own_stat() {
        let stat = Stat::read(std::process::id()).expect("own stat");
        assert!(stat.ppid > 0);
    }

    /// A server's time is its root's own and reaped time plus its live
    /// children's; a child of the same name is not a root.
    #[test]
    fn server_ticks_counts_root_and_children() {
        let stat = |ppid, utime, cutime| Stat { ppid, utime, stime: 1, cutime, cstime: 0 };
        let table = vec![
            Process { pid: 1, comm: "init".into(), stat: stat(0, 0, 0) },
            Process { pid: 10, comm: "postgres".into(), stat: stat(1, 5, 100) },
            Process { pid: 11, comm: "postgres".into(), stat: stat(10, 20, 0) },
            Process { pid: 12, comm: "other".into(), stat: stat(1, 1000, 0) },
        ];
        assert_eq!(roots(&table, "postgres"), vec![10]);
        // root: 5 + 1 + 100, child: 20 + 1
        assert_eq!(server_ticks(&table, &[10]), 127);
        assert_eq!(server_ticks(&table, &[]), 0);
    }
}
