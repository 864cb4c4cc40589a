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
