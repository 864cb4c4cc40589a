//! Worker processes for these tests: start the `hookline-worker` binary on
//! a database and namespace, and keep each test's worker logs (printed when
//! the test fails). The crash and soak tests both use them.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
};

/// Where a worker process connects.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target<'a> {
    /// `HOOKLINE_DATABASE_URL`.
    pub(crate) database_url: &'a str,
    /// `HOOKLINE_AMQP_URL`.
    pub(crate) amqp_url: &'a str,
    /// `HOOKLINE_NAMESPACE`.
    pub(crate) namespace: &'a str,
}

/// A running worker process and the address of its `/healthz` and `/metrics`.
#[derive(Debug)]
pub(crate) struct WorkerProcess {
    /// The process (killed when dropped).
    pub(crate) child: tokio::process::Child,
    /// `HOOKLINE_WORKER_LISTEN_ADDR`.
    pub(crate) addr: SocketAddr,
}

/// Starts the worker binary on `target` with a free listen port, loopback
/// destinations allowed and `RUST_LOG=warn`, then `vars` in order (a later
/// variable replaces an earlier one of the same name). Its output (stdout
/// and stderr) is appended to `log` when given, else dropped.
pub(crate) fn spawn_process(target: Target<'_>, vars: &[(&str, &str)], log: Option<&Path>) -> WorkerProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // The log subscriber writes to stdout; panics and start-up errors go to
    // stderr. Both are kept.
    let (stdout, stderr) = match log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap_or_else(|e| panic!("open the worker log {}: {e}", path.display()));
            let copy = file.try_clone().expect("a second handle on the log file");
            (Stdio::from(file), Stdio::from(copy))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline-worker"));
    command
        .env_clear()
        .env("HOOKLINE_DATABASE_URL", target.database_url)
        .env("HOOKLINE_AMQP_URL", target.amqp_url)
        .env("HOOKLINE_NAMESPACE", target.namespace)
        .env("HOOKLINE_WORKER_LISTEN_ADDR", addr.to_string())
        .env("HOOKLINE_ALLOWED_NETWORKS", "127.0.0.0/8")
        .env("RUST_LOG", "warn");
    for (name, value) in vars {
        command.env(name, value);
    }
    let child = command.stdout(stdout).stderr(stderr).kill_on_drop(true).spawn().expect("the worker binary starts");
    WorkerProcess { child, addr }
}

/// A directory for one test's worker logs. Removed when the test passes;
/// when it fails (the value is dropped while panicking), kept, and the
/// last lines of every log are printed.
#[derive(Debug)]
pub(crate) struct LogDir {
    dir: PathBuf,
}

impl LogDir {
    /// Creates `hookline-<name>-<random>` under the temporary directory.
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hookline-{name}-{}", hookline_testkit::unique_suffix()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Self { dir }
    }

    /// The path of the log file `name` in this directory.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Every log line that contains `needle`, prefixed with its file name.
    pub(crate) fn grep(&self, needle: &str) -> Vec<String> {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(&self.dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        files.sort();
        let mut found = Vec::new();
        for path in files {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            found.extend(text.lines().filter(|l| l.contains(needle)).map(|l| format!("{name}: {l}")));
        }
        found
    }

    /// The last `lines` lines of every log, each under its file name.
    pub(crate) fn tails(&self, lines: usize) -> String {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(&self.dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        files.sort();
        let mut out = String::new();
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {} ({} lines) ---\n", path.display(), all.len()));
            for line in &all[all.len().saturating_sub(lines)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for LogDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("worker logs kept in {}; their last lines:\n{}", self.dir.display(), self.tails(40));
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
