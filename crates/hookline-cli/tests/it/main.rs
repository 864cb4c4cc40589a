//! Tests of the `hookline` binary.

use std::{
    io::Write,
    process::{Command, Stdio},
};

const BIN: &str = env!("CARGO_BIN_EXE_hookline");

fn verify(token: &str, signature: &str, body: &[u8]) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(["verify", "--token", token, "--signature", signature])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("hookline starts");
    child.stdin.take().expect("stdin").write_all(body).expect("write body");
    let out = child.wait_with_output().expect("hookline exits");
    (out.status.code().expect("an exit code"), String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `hookline verify` exits 0 for a matching signature (a vector computed
/// with Python's hmac module) and 1 for a wrong signature, token or body.
#[test]
fn verify_exit_status() {
    let body = br#"{"event":"license.created","data":{"licenseKey":"ABCD-1234"},"triggeredAt":"2018-04-20T13:11:34.6926949Z"}"#;
    let token = "whsec_0123456789abcdef";
    let good = "6E4R1oYkQSUHqZH89DLSLDBQyCuqjNguVKfbboN/Dz8=";
    assert_eq!(verify(token, good, body), (0, "valid".to_owned()));
    assert_eq!(verify(token, "6E4R1oYkQSUHqZH89DLSLDBQyCuqjNguVKfbboN/Dz8", body).0, 1);
    assert_eq!(verify("whsec_0123456789abcdeX", good, body).0, 1);
    assert_eq!(verify(token, good, &body[1..]).0, 1);
    assert_eq!(verify(token, "garbage", body), (1, "invalid".to_owned()));
}

/// `hookline run` serves both the producer's and the worker's `/healthz` and
/// exits 0 on SIGTERM.
#[tokio::test]
async fn run_starts_both_services_and_exits_on_sigterm() {
    hookline_testkit::smoke::start_health_stop(
        BIN,
        &["run"],
        &["HOOKLINE_LISTEN_ADDR", "HOOKLINE_WORKER_LISTEN_ADDR"],
        std::time::Duration::from_secs(30),
    )
    .await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// Webhook tokens never reach the logs: `hookline run` at debug level goes
/// through create, update, rotation, a refused create and a delivery, and
/// none of the tokens involved appears in anything it printed.
#[tokio::test]
async fn tokens_never_appear_in_logs() {
    let receiver = hookline_testkit::Receiver::start().await;
    let mut running = start_hookline("debug", true).await;
    let key = ADMIN_KEY;
    let (out, err) = running.logs.take().expect("captured");
    let http = reqwest::Client::new();
    let api = running.api.clone();
    let canaries = [
        "canary-first-token-0123456789",
        "canary-patched-token-0123456789",
        "canary-rotated-token-0123456789",
        "canary-short",
    ];
    let post =
        |path: &str, body: serde_json::Value| http.post(format!("{api}{path}")).bearer_auth(key).json(&body).send();
    let created = post(
        "/v1/webhooks",
        serde_json::json!({"name": "w", "url": receiver.url(), "token": canaries[0], "events": ["*"]}),
    )
    .await
    .expect("create");
    assert_eq!(created.status(), 201);
    let id = created.json::<serde_json::Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let patched = http
        .patch(format!("{api}/v1/webhooks/{id}"))
        .bearer_auth(key)
        .json(&serde_json::json!({"token": canaries[1]}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);
    let rotated = post(&format!("/v1/webhooks/{id}/rotate-token"), serde_json::json!({"token": canaries[2]}))
        .await
        .expect("rotate");
    assert_eq!(rotated.status(), 200);
    let refused = post(
        "/v1/webhooks",
        serde_json::json!({"name": "w", "url": receiver.url(), "token": canaries[3], "events": ["*"]}),
    )
    .await
    .expect("refused create");
    assert_eq!(refused.status(), 422);
    assert!(!refused.text().await.expect("body").contains(canaries[3]), "the error does not echo the token");
    let sent = post("/v1/events", serde_json::json!({"event": "license.created", "data": {}})).await.expect("event");
    assert_eq!(sent.status(), 202);
    let got = receiver.wait_for(1, std::time::Duration::from_secs(30)).await;
    assert!(got[0].header("webhook-signature").is_some_and(|s| s.split(' ').count() == 2), "signed by both tokens");

    let pid = running.child.id().expect("running");
    assert!(Command::new("kill").arg("-TERM").arg(pid.to_string()).status().expect("kill").success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), running.child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait");
    assert!(status.success(), "{status}");
    let logs = out.await.expect("stdout") + &err.await.expect("stderr");
    assert!(logs.contains("webhook created") && logs.contains("delivered"), "debug logs were captured: {logs}");
    for canary in canaries {
        assert!(!logs.contains(canary), "token {canary} appears in the logs");
    }
}

/// `hookline run` on a test database and namespace, with its API address.
struct Running {
    child: tokio::process::Child,
    /// What it prints to stdout and stderr, read from the start (when
    /// captured): a pipe nobody reads fills up, and a process logging at
    /// debug level would block on it before it is ready.
    logs: Option<(tokio::task::JoinHandle<String>, tokio::task::JoinHandle<String>)>,
    api: String,
    _db: hookline_testkit::TestDb,
    _broker: hookline_testkit::TestBroker,
}

const ADMIN_KEY: &str = "cli-test-admin-key-0123456789";

async fn start_hookline(rust_log: &str, capture: bool) -> Running {
    let db = hookline_testkit::TestDb::new().await;
    let broker = hookline_testkit::TestBroker::new().await;
    let (api_port, worker_port) = (free_port(), free_port());
    let output = || if capture { Stdio::piped() } else { Stdio::null() };
    let child = tokio::process::Command::new(BIN)
        .arg("run")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOOKLINE_DATABASE_URL", db.url())
        .env("HOOKLINE_AMQP_URL", broker.url())
        .env("HOOKLINE_NAMESPACE", broker.namespace())
        .env("HOOKLINE_QUEUE_EXPIRES_MS", "120000")
        .env("HOOKLINE_QUEUE_TYPE", "classic")
        .env("HOOKLINE_LISTEN_ADDR", format!("127.0.0.1:{api_port}"))
        .env("HOOKLINE_WORKER_LISTEN_ADDR", format!("127.0.0.1:{worker_port}"))
        .env("HOOKLINE_API_KEYS", ADMIN_KEY)
        .env("HOOKLINE_ALLOWED_NETWORKS", "127.0.0.0/8")
        .env("RUST_LOG", rust_log)
        .stdout(output())
        .stderr(output())
        .kill_on_drop(true)
        .spawn()
        .expect("hookline starts");
    let mut child = child;
    let logs = capture.then(|| {
        use tokio::io::AsyncReadExt;
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let out = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text).await;
            text
        });
        let err = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        (out, err)
    });
    let api = format!("http://127.0.0.1:{api_port}");
    let http = reqwest::Client::new();
    hookline_testkit::eventually(std::time::Duration::from_secs(60), || async {
        http.get(format!("{api}/readyz"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .error_for_status()
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
    Running { child, logs, api, _db: db, _broker: broker }
}

/// Runs the CLI against `running`; `key` goes in `HOOKLINE_API_KEY`.
fn cli(running: &Running, key: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(BIN);
    command.args(args).env_clear().env("HOOKLINE_URL", &running.api);
    if let Some(key) = key {
        command.env("HOOKLINE_API_KEY", key);
    }
    let out = command.output().expect("hookline runs");
    (
        out.status.code().expect("an exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The admin commands drive the API: create (token generated and shown
/// once), list, send an event, read the log and one delivery's attempts,
/// follow attempts live, and report API errors with their code (exit 1).
#[tokio::test]
async fn admin_commands_drive_the_api() {
    let running = start_hookline("warn", false).await;
    let receiver = hookline_testkit::Receiver::start().await;
    let key = Some(ADMIN_KEY);

    let (code, out, err) = cli(
        &running,
        key,
        &["webhooks", "create", "--name", "crm", "--url", &receiver.url(), "--events", "license.*,activation.created"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("crm") && out.contains("token (shown once, keep it): whsec_"), "{out}");
    let id = out.lines().nth(1).and_then(|l| l.split_whitespace().next()).expect("the id column").to_owned();

    let (code, out, _) = cli(&running, key, &["webhooks", "list"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ID") && out.contains(&id) && out.contains("license.*,activation.created"), "{out}");

    let (code, out, err) = cli(
        &running,
        key,
        &["events", "send", "--event", "license.created", "--data", r#"{"seats":5}"#, "--id", "cli-1"],
    );
    assert_eq!((code, out.trim()), (0, "accepted cli-1"), "{err}");
    receiver.wait_for(1, std::time::Duration::from_secs(20)).await;

    let delivery = hookline_testkit::eventually(std::time::Duration::from_secs(20), || async {
        let (_, out, _) = cli(&running, key, &["deliveries", "list", "--webhook", &id, "--json"]);
        let page: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        match page["data"][0]["state"].as_str() {
            Some("delivered") => Ok(page["data"][0]["id"].as_str().unwrap_or_default().to_owned()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let (code, out, _) = cli(&running, key, &["deliveries", "show", &delivery]);
    assert_eq!(code, 0);
    assert!(out.contains("delivered") && out.contains("TRIGGER") && out.contains("scheduled"), "{out}");
    assert!(out.contains(r#""seats":5"#), "the payload is shown: {out}");

    let (code, out, _) =
        cli(&running, key, &["logs", "tail", "--webhook", &id, "--exit-after", "1", "--interval-ms", "100"]);
    assert_eq!(code, 0);
    assert!(out.contains(&delivery) && out.contains("#1 200"), "{out}");

    // Errors: bad input names the field; no key is refused.
    let (code, _, err) =
        cli(&running, key, &["webhooks", "create", "--name", "x", "--url", "ftp://x", "--events", "a"]);
    assert_eq!(code, 1);
    assert!(err.contains("422") && err.contains("invalid_field") && err.contains("url"), "{err}");
    let (code, _, err) = cli(&running, None, &["webhooks", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("401") && err.contains("unauthorized"), "{err}");

    let (code, out, _) = cli(&running, key, &["webhooks", "delete", &id]);
    assert_eq!((code, out.trim().to_owned()), (0, format!("deleted {id}")));
    drop(running.child);
}
