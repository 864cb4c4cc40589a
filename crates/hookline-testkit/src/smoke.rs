//! Binary smoke tests: start a real service binary against a test database
//! and namespace, wait for `/healthz`, send SIGTERM, expect a clean exit.

use std::{process::Stdio, time::Duration};

use crate::{TestBroker, TestDb};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// Runs `binary args…` with its `HOOKLINE_*` variables pointing at a fresh
/// test database and namespace and each of `listen_vars` set to a free
/// loopback port; asserts that every one of them serves `/healthz` and that
/// the process exits 0 within `stop_within` of SIGTERM.
pub async fn start_health_stop(binary: &str, args: &[&str], listen_vars: &[&str], stop_within: Duration) {
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let ports: Vec<u16> = listen_vars.iter().map(|_| free_port()).collect();
    let mut command = tokio::process::Command::new(binary);
    command.env_clear();
    for (var, port) in listen_vars.iter().zip(&ports) {
        command.env(var, format!("127.0.0.1:{port}"));
    }
    let mut child = command
        .args(args)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOOKLINE_DATABASE_URL", db.url())
        .env("HOOKLINE_AMQP_URL", broker.url())
        .env("HOOKLINE_NAMESPACE", broker.namespace())
        .env("HOOKLINE_QUEUE_EXPIRES_MS", "120000")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for port in ports {
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{binary} exited early with {status}");
            }
            match probe(port).await {
                Ok(()) => break,
                Err(e) if tokio::time::Instant::now() > deadline => {
                    panic!("{binary} never served /healthz on port {port}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    let pid = child.id().expect("the child is running");
    let status = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().expect("kill runs");
    assert!(status.success(), "SIGTERM sent");
    let exit = tokio::time::timeout(stop_within, child.wait())
        .await
        .unwrap_or_else(|_| panic!("{binary} did not exit within {stop_within:?} of SIGTERM"))
        .expect("wait for the child");
    assert!(exit.success(), "{binary} exited with {exit}");
}

/// One `GET /healthz` over a raw connection: `Ok` on a 200.
async fn probe(port: u16) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.map_err(|e| e.to_string())?;
    if response.starts_with("HTTP/1.1 200") { Ok(()) } else { Err(format!("unexpected answer: {response}")) }
}
