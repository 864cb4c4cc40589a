//! A private PostgreSQL cluster for fault tests: `initdb` in a temporary
//! directory, its own port on 127.0.0.1, so a test can restart it without
//! disturbing the shared server the other tests use.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// A PostgreSQL cluster owned by one test; stopped and removed when dropped.
#[derive(Debug)]
pub struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

/// The newest installed server's binaries (Debian: /usr/lib/postgresql/N/bin).
fn bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .unwrap_or_else(|e| {
            panic!("no PostgreSQL server under {} ({e}); the `services` step of .ci/run installs it", root.display())
        })
        .flatten()
        .filter_map(|e| Some((e.file_name().to_string_lossy().parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect("an installed PostgreSQL server with initdb")
}

/// Runs a PostgreSQL tool as the `postgres` user (the server refuses root).
fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program).stdout(Stdio::null()).stderr(Stdio::null());
    command
}

impl PrivatePostgres {
    /// Creates and starts a fresh cluster with trust authentication.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("hookline-pg-{}", crate::unique_suffix()));
        std::fs::create_dir_all(&dir).expect("create the cluster dir");
        let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status();
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let pg = Self { dir, bin: bin_dir(), port };
        let status = as_postgres(&pg.bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(pg.dir.join("data"))
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb failed: {status}");
        pg.ctl("start");
        pg
    }

    fn ctl(&self, action: &str) {
        ctl(&self.bin, &self.dir, self.port, action);
    }

    /// A URL for `database` on this cluster (created on first use by Hookline).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Restarts the server (fast shutdown: every connection is cut). Runs
    /// off the async runtime, so services in the same process keep running
    /// and see the outage.
    pub async fn restart(&self) {
        let (bin, dir, port) = (self.bin.clone(), self.dir.clone(), self.port);
        tokio::task::spawn_blocking(move || ctl(&bin, &dir, port, "restart")).await.expect("pg_ctl restart");
    }

    /// Stops the server (fast shutdown) until [`PrivatePostgres::start_again`].
    pub async fn stop(&self) {
        let (bin, dir, port) = (self.bin.clone(), self.dir.clone(), self.port);
        tokio::task::spawn_blocking(move || ctl(&bin, &dir, port, "stop")).await.expect("pg_ctl stop");
    }

    /// Starts a server stopped by [`PrivatePostgres::stop`] again.
    pub async fn start_again(&self) {
        let (bin, dir, port) = (self.bin.clone(), self.dir.clone(), self.port);
        tokio::task::spawn_blocking(move || ctl(&bin, &dir, port, "start")).await.expect("pg_ctl start");
    }
}

fn ctl(bin: &Path, dir: &Path, port: u16, action: &str) {
    let options =
        format!("-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200", dir.display());
    let status = as_postgres(&bin.join("pg_ctl"))
        .args([action, "-w", "-m", "fast", "-D"])
        .arg(dir.join("data"))
        .arg("-l")
        .arg(dir.join("log"))
        .args(["-o", &options])
        .status()
        .expect("pg_ctl runs");
    assert!(status.success(), "pg_ctl {action} failed: {status} (log in {})", dir.join("log").display());
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
