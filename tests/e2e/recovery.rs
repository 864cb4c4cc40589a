//! Recovery probes: a suspended webhook with `recovery.probe` is probed on a
//! backoff, resumed by the first `2xx`, and with `recovery.replay` gets
//! what its suspension held; without probing it is never probed; several
//! workers probe a webhook once per due time.

use std::{collections::HashSet, time::Duration};

use hookline_core::ProbeBackoff;
use hookline_e2e::{Received, Receiver, TestApp, WAIT, eventually, webhook};
use serde_json::{Value, json};

/// Probes from `first_ms`, doubling up to `max_ms`, looked for every 10 ms.
fn probing(worker: &mut hookline_worker::Settings, first_ms: u64, max_ms: u64) {
    worker.recovery_probe =
        ProbeBackoff::try_new(Duration::from_millis(first_ms), Duration::from_millis(max_ms)).expect("valid");
    worker.recovery_poll = Duration::from_millis(10);
}

fn body(request: &Received) -> Value {
    serde_json::from_slice(&request.body).expect("a JSON body")
}

fn is_probe(request: &Received) -> bool {
    body(request)["event"] == "hookline.probe"
}

fn probes(receiver: &Receiver) -> Vec<Received> {
    receiver.requests().into_iter().filter(is_probe).collect()
}

/// Waits until `receiver` has had at least `n` probes.
async fn wait_for_probes(receiver: &Receiver, n: usize) -> Vec<Received> {
    eventually(WAIT, || async {
        let got = probes(receiver);
        if got.len() >= n { Ok(got) } else { Err(format!("{} of {n} probes", got.len())) }
    })
    .await
}

/// Posts event `<name>.created` number `i` (id `<name>-<i>`), which only
/// the webhook called `name` takes.
async fn post(app: &TestApp, name: &str, i: u32) {
    app.post_event(&json!({"event": format!("{name}.created"), "data": {"i": i}, "id": format!("{name}-{i}")})).await;
}

/// Creates a webhook on `receiver` with `recovery`, subscribed to
/// `<name>.*`, and suspends it at once (its receiver answers `410` to one
/// event); its receiver then answers `500`.
async fn suspended(app: &TestApp, receiver: &Receiver, name: &str, recovery: Value) -> String {
    let mut body = webhook(name, &receiver.url(), &[&format!("{name}.*")]);
    body["recovery"] = recovery;
    let id = app.create_webhook(&body).await;
    receiver.set_status(410);
    post(app, name, 0).await;
    eventually(WAIT, || async {
        let w = app.webhook(&id).await;
        if w["status"] == "suspended" { Ok(()) } else { Err(format!("{w}")) }
    })
    .await;
    receiver.set_status(500);
    id
}

/// Waits until `n` of the webhook's deliveries are held (`suspended`).
async fn held(app: &TestApp, id: &str, n: usize) {
    eventually(WAIT, || async {
        let list = app.deliveries(id).await;
        let held = list.iter().filter(|d| d["state"] == "suspended").count();
        if held == n { Ok(()) } else { Err(format!("{held} of {n} held: {list:?}")) }
    })
    .await;
}

fn gaps(probes: &[Received]) -> Vec<Duration> {
    probes.windows(2).map(|w| Duration::try_from(w[1].at - w[0].at).expect("probes arrive in order")).collect()
}

/// A suspended webhook with probing and replay on is sent signed
/// `hookline.probe` requests while its receiver fails, one first wait after
/// the suspension and then twice as long each time (up to the cap), each an
/// attempt with trigger `probe` of one probe delivery; the first `2xx`
/// resumes it, and what the suspension held (the delivery whose failure
/// suspended it, and events logged meanwhile) is delivered, once each.
#[tokio::test]
async fn probes_back_off_then_a_success_resumes_and_replays() {
    let app = TestApp::spawn_with(|_, worker| {
        probing(worker, 200, 1600);
        worker.recover_rate_per_sec = 50;
    })
    .await;
    let receiver = Receiver::start().await;
    let id = suspended(&app, &receiver, "flaky", json!({"probe": true, "replay": true})).await;
    for i in 1..=3 {
        post(&app, "flaky", i).await;
    }
    held(&app, &id, 4).await;

    let got = wait_for_probes(&receiver, 4).await;
    let suspended_at =
        hookline_core::parse_timestamp(app.webhook(&id).await["suspendedAt"].as_str().expect("suspendedAt"))
            .expect("a time");
    assert!(got[0].at - suspended_at >= time::Duration::milliseconds(190), "the first probe waits the first wait");
    let gaps = gaps(&got[..4]);
    for (gap, want) in gaps.iter().zip([400, 800, 1600]) {
        assert!(*gap >= Duration::from_millis(want * 95 / 100), "gaps grow on the backoff: {gaps:?}");
    }
    assert!(gaps.windows(2).all(|w| w[1] > w[0]), "gaps grow: {gaps:?}");
    let token = "whsec-flaky-0123456789abcdef";
    let webhook_ids: HashSet<&str> = got.iter().map(|r| r.header("webhook-id").expect("Webhook-Id")).collect();
    assert_eq!(webhook_ids.len(), 1, "every probe of a suspension is one delivery");
    for probe in &got {
        let signature = probe.header("webhook-signature").expect("signed");
        assert!(hookline_core::verify(token, &probe.body, signature), "a probe is signed like any delivery");
        assert_eq!(body(probe)["data"], json!({"webhookId": id}));
    }
    assert_eq!(receiver.requests().iter().filter(|r| !is_probe(r)).count(), 1, "nothing but probes while suspended");
    // The failed probe delivery is not something `recover` replays.
    let since = hookline_core::format_timestamp(time::OffsetDateTime::now_utc() - time::Duration::minutes(10));
    let dry = app.post(&format!("/v1/webhooks/{id}/recover"), &json!({"since": since, "dryRun": true})).await;
    assert_eq!(dry.body["count"], 4, "the four held deliveries, not the probe: {:?}", dry.body);

    receiver.set_status(200);
    eventually(WAIT, || async {
        let w = app.webhook(&id).await;
        if w["status"] == "healthy" && w["consecutiveFailures"] == 0 { Ok(()) } else { Err(format!("{w}")) }
    })
    .await;
    let delivered = eventually(WAIT, || async {
        let list = app.deliveries(&id).await;
        let events: Vec<&Value> = list.iter().filter(|d| d["eventType"] == "flaky.created").collect();
        if events.len() == 4 && events.iter().all(|d| d["state"] == "delivered") {
            Ok(list.clone())
        } else {
            Err(format!("{list:?}"))
        }
    })
    .await;
    // Replays come through the delay tiers at 50 a second; anything
    // duplicated would come within a few of those spacings.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<Received> = receiver.requests().into_iter().filter(|r| !is_probe(r) && r.status == 200).collect();
    let ids: HashSet<&str> = after.iter().map(|r| r.header("webhook-id").expect("Webhook-Id")).collect();
    assert_eq!((after.len(), ids.len()), (4, 4), "each held delivery once: {after:?}");
    let mut replayed: Vec<i64> = after.iter().map(|r| body(r)["data"]["i"].as_i64().expect("i")).collect();
    replayed.sort_unstable();
    assert_eq!(replayed, [0, 1, 2, 3]);

    let probe = delivered.iter().find(|d| d["eventType"] == "hookline.probe").expect("the probe delivery");
    let detail = app.get(&format!("/v1/deliveries/{}", probe["id"].as_str().expect("id"))).await.body;
    assert_eq!(detail["state"], "delivered");
    let attempts = detail["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), probes(&receiver).len(), "every probe is an attempt");
    assert!(attempts.iter().all(|a| a["trigger"] == "probe"), "{attempts:?}");
    assert_eq!(attempts.last().expect("one")["statusCode"], 200);
    assert_eq!(attempts[0]["statusCode"], 500);
    assert!(attempts[0]["retryReason"].as_str().is_some_and(|r| r.starts_with("HTTP 500; next probe in")));
    app.stop().await;
}

/// A suspended webhook without probing is never probed (while one with
/// probing beside it is, several times); with replay off, a resume by
/// probe leaves what the suspension held as it is.
#[tokio::test]
async fn without_probing_no_probe_and_without_replay_no_replay() {
    let app = TestApp::spawn_with(|_, worker| probing(worker, 100, 200)).await;
    let (probed, quiet) = (Receiver::start().await, Receiver::start().await);
    let on = suspended(&app, &probed, "probed", json!({"probe": true, "replay": false})).await;
    let off = suspended(&app, &quiet, "quiet", json!({"probe": false, "replay": true})).await;
    post(&app, "probed", 1).await;
    post(&app, "quiet", 1).await;
    held(&app, &on, 2).await;
    held(&app, &off, 2).await;

    wait_for_probes(&probed, 4).await;
    assert!(probes(&quiet).is_empty(), "probing off: no probe");
    probed.set_status(200);
    eventually(WAIT, || async {
        let w = app.webhook(&on).await;
        if w["status"] == "healthy" { Ok(()) } else { Err(format!("{w}")) }
    })
    .await;
    // Ten more first waits: the quiet one is still not probed, and the
    // resumed one's held deliveries were not replayed.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(probes(&quiet).is_empty(), "probing off: no probe");
    assert_eq!(quiet.count(), 1, "the quiet webhook got only the request that suspended it");
    assert_eq!(app.webhook(&off).await["status"], "suspended");
    held(&app, &on, 2).await;
    assert_eq!(probed.requests().iter().filter(|r| !is_probe(r)).count(), 1, "no replay");
    app.stop().await;
}

/// Three workers looking for due probes every 5 ms: each due time gives
/// exactly one probe (a second worker's would come within milliseconds of
/// the first), and every probe is recorded once.
#[tokio::test]
async fn several_workers_probe_once_per_due_time() {
    let mut app = TestApp::spawn_with(|_, worker| {
        probing(worker, 300, 300);
        worker.recovery_poll = Duration::from_millis(5);
    })
    .await;
    app.add_worker().await;
    app.add_worker().await;
    let receiver = Receiver::start().await;
    let id = suspended(&app, &receiver, "contested", json!({"probe": true, "replay": false})).await;
    receiver.set_delay(Duration::from_millis(30));
    let got = wait_for_probes(&receiver, 6).await;
    let gaps = gaps(&got[..6]);
    assert!(gaps.iter().all(|g| *g >= Duration::from_millis(285)), "one probe per due time: {gaps:?}");
    receiver.set_status(200);
    eventually(WAIT, || async {
        let w = app.webhook(&id).await;
        if w["status"] == "healthy" { Ok(()) } else { Err(format!("{w}")) }
    })
    .await;
    let list = app.deliveries(&id).await;
    let probe = list.iter().find(|d| d["eventType"] == "hookline.probe").expect("the probe delivery");
    let sent = probes(&receiver).len();
    assert_eq!(probe["attemptCount"], sent, "every probe recorded once");
    app.stop().await;
}
