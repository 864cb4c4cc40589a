//! The admin portal over HTTP: sign-in and sessions, CSRF, the webhook form
//! with its validation, the event log, a delivery and its retry, and tenant
//! scoping. (Browser tests in Chromium come with the rest of the portal.)

use hookline_e2e::{ADMIN_KEY, Receiver, TestApp, WAIT, eventually, webhook};
use serde_json::json;

struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    html: String,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Self { http, base: app.url(""), cookie: None }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.cookie {
            Some(c) => request.header("cookie", c),
            None => request,
        };
        let response = request.send().await.expect("the portal answers");
        if let Some(set) = response.headers().get("set-cookie").and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap_or_default().to_owned();
            self.cookie = if pair.ends_with('=') { None } else { Some(pair) };
        }
        Page {
            status: response.status().as_u16(),
            location: response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned),
            html: response.text().await.expect("a body"),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body: String = form.iter().map(|(k, v)| format!("{k}={}", url_encode(v))).collect::<Vec<_>>().join("&");
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The CSRF token in a page's forms.
fn csrf(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    html[start..].split('"').next().expect("closing quote").to_owned()
}

/// Signing in sets a strict, HTTP-only session cookie; pages need it; forms
/// need their CSRF token; signing out ends the session.
#[tokio::test]
async fn sessions_and_csrf() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/ui/webhooks").await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/ui/login")));

    let page = browser.post("/ui/login", &[("key", "wrong-key-0123456789")]).await;
    assert_eq!(page.status, 401);
    assert!(page.html.contains("not valid"));
    assert!(browser.cookie.is_none());

    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(app.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={ADMIN_KEY}"))
        .send()
        .await
        .expect("login");
    let cookie = response.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/ui"),
        "{cookie}"
    );

    let page = browser.post("/ui/login", &[("key", ADMIN_KEY)]).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/ui/webhooks")));
    let page = browser.get("/ui/webhooks").await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("No webhooks yet") && page.html.contains("administrator"));

    // A form posted without (or with another session's) token is refused.
    let page = browser.post("/ui/webhooks", &[("name", "x"), ("url", "https://example.com"), ("events", "*")]).await;
    assert_eq!(page.status, 422, "a missing field is a form error, not a crash");
    let page = browser
        .post("/ui/webhooks", &[("csrf", "forged"), ("name", "x"), ("url", "https://example.com"), ("events", "*")])
        .await;
    assert_eq!(page.status, 403);

    let token = csrf(&browser.get("/ui/webhooks").await.html);
    let page = browser.post("/ui/logout", &[("csrf", &token)]).await;
    assert_eq!(page.location.as_deref(), Some("/ui/login"));
    assert!(browser.cookie.is_none());
    assert_eq!(browser.get("/ui/webhooks").await.status, 303);
    app.stop().await;
}

/// Through the form: a validation error shows beside its field; a webhook
/// is created with a generated token shown once; an event shows in its log;
/// the delivery page shows the attempt; retry and delete work.
#[tokio::test]
async fn webhooks_through_the_portal() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let mut browser = Browser::new(&app);
    browser.post("/ui/login", &[("key", ADMIN_KEY)]).await;
    let token = csrf(&browser.get("/ui/webhooks/new").await.html);

    let page = browser
        .post(
            "/ui/webhooks",
            &[("csrf", &token), ("name", "CRM"), ("url", "ftp://nope"), ("events", "license.*"), ("active", "on")],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.html.contains("id=\"url-error\"") && page.html.contains("http or https"), "{}", page.html);
    assert!(page.html.contains("value=\"CRM\""), "what was typed is kept");

    let page = browser
        .post(
            "/ui/webhooks",
            &[
                ("csrf", &token),
                ("name", "CRM <sync>"),
                ("url", &receiver.url()),
                ("events", "license.*, activation.created"),
                ("active", "on"),
                ("scheme", "hookline"),
            ],
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("shown this once") && page.html.contains("whsec_"), "{}", page.html);
    assert!(page.html.contains("CRM &lt;sync&gt;"), "names are escaped");
    let list = browser.get("/ui/webhooks").await.html;
    let id_start = list.find("/ui/webhooks/0").expect("a link to the webhook") + "/ui/webhooks/".len();
    let id = list[id_start..].split('"').next().expect("id").to_owned();
    assert!(list.contains("healthy"));

    app.post_event(&json!({"event": "license.created", "data": {"seats": 3}})).await;
    receiver.wait_for(1, WAIT).await;
    let log = eventually(WAIT, || async {
        let mut b = Browser { http: browser.http.clone(), base: browser.base.clone(), cookie: browser.cookie.clone() };
        let html = b.get(&format!("/ui/webhooks/{id}")).await.html;
        if html.contains("data-label=\"State\">delivered") { Ok(html) } else { Err(html) }
    })
    .await;
    let d_start = log.find("/ui/deliveries/").expect("a delivery link") + "/ui/deliveries/".len();
    let delivery = log[d_start..].split('"').next().expect("id").to_owned();
    let page = browser.get(&format!("/ui/deliveries/{delivery}")).await;
    assert!(page.html.contains("HTTP 200") && page.html.contains("&quot;seats&quot;: 3"), "{}", page.html);

    let page = browser.post(&format!("/ui/deliveries/{delivery}/retry"), &[("csrf", &token)]).await;
    assert_eq!(page.location, Some(format!("/ui/deliveries/{delivery}")));
    receiver.wait_for(2, WAIT).await;

    // Filters narrow the log.
    let filtered = browser.get(&format!("/ui/webhooks/{id}?state=failed")).await.html;
    assert!(!filtered.contains("/ui/deliveries/"));

    let page = browser.post(&format!("/ui/webhooks/{id}/delete"), &[("csrf", &token)]).await;
    assert_eq!(page.status, 400, "deleting needs the confirmation box");
    let page = browser.post(&format!("/ui/webhooks/{id}/delete"), &[("csrf", &token), ("confirm", "yes")]).await;
    assert_eq!(page.location.as_deref(), Some("/ui/webhooks"));
    assert_eq!(browser.get(&format!("/ui/webhooks/{id}")).await.status, 404);
    app.stop().await;
}

/// A tenant token opens the portal on that tenant only.
#[tokio::test]
async fn tenant_link_sees_its_own_webhooks() {
    let app = TestApp::spawn().await;
    let mut mine = webhook("mine", "https://example.com/a", &["*"]);
    mine["tenant"] = json!("acct-a");
    let mut theirs = webhook("theirs", "https://example.com/b", &["*"]);
    theirs["tenant"] = json!("acct-b");
    app.create_webhook(&mine).await;
    let other = app.create_webhook(&theirs).await;
    let minted = app.post("/v1/tenants/acct-a/tokens", &json!({"ttlSeconds": 600})).await;
    let token = minted.body["token"].as_str().expect("a token").to_owned();

    let mut browser = Browser::new(&app);
    let page = browser.get(&format!("/ui/login?token={}", url_encode(&token))).await;
    assert_eq!(page.location.as_deref(), Some("/ui/webhooks"));
    let list = browser.get("/ui/webhooks").await.html;
    assert!(list.contains("mine") && !list.contains("theirs") && list.contains("account acct-a"), "{list}");
    assert_eq!(browser.get(&format!("/ui/webhooks/{other}")).await.status, 404);
    // The session lasts no longer than the token.
    let raw = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let answer = raw.get(app.url(&format!("/ui/login?token={}", url_encode(&token)))).send().await.expect("login");
    let cookie = answer.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("a cookie").to_owned();
    let max_age: i64 = cookie
        .split(';')
        .find_map(|p| p.trim().strip_prefix("Max-Age="))
        .and_then(|v| v.parse().ok())
        .expect("Max-Age");
    assert!((1..=600).contains(&max_age), "{cookie}");
    let mut forged = Browser::new(&app);
    assert_eq!(forged.get(&format!("/ui/login?token={}x", url_encode(&token))).await.status, 401);
    app.stop().await;
}

/// From the webhook page: a test event reaches only that webhook; a token
/// rotation shows the new token once; recover counts first, then replays.
#[tokio::test]
async fn webhook_actions() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let id = app.create_webhook(&webhook("acts", &receiver.url(), &["license.*"])).await;
    let mut browser = Browser::new(&app);
    browser.post("/ui/login", &[("key", ADMIN_KEY)]).await;
    let page = browser.get(&format!("/ui/webhooks/{id}")).await;
    let token = csrf(&page.html);

    let page = browser.post(&format!("/ui/webhooks/{id}/test"), &[("csrf", &token)]).await;
    let location = page.location.expect("to the delivery");
    assert!(location.starts_with("/ui/deliveries/"), "{location}");
    let got = receiver.wait_for(1, WAIT).await;
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).expect("JSON");
    assert_eq!(body["event"], "hookline.test");

    let page = browser.post(&format!("/ui/webhooks/{id}/rotate"), &[("csrf", &token), ("grace_hours", "1")]).await;
    assert!(page.html.contains("shown this once") && page.html.contains("whsec_"), "{}", page.html);
    assert!(app.webhook(&id).await["previousTokenExpiresAt"].is_string());

    receiver.set_status(500);
    app.post_event(&json!({"event": "license.created", "id": "to-recover", "data": {}})).await;
    eventually(WAIT, || async {
        let list = app.deliveries(&id).await;
        if list.iter().any(|d| d["eventId"] == "to-recover" && d["state"] == "failed") {
            Ok(())
        } else {
            Err(format!("{list:?}"))
        }
    })
    .await;
    let since = hookline_core::format_timestamp(time::OffsetDateTime::now_utc() - time::Duration::HOUR);
    let page = browser.post(&format!("/ui/webhooks/{id}/recover"), &[("csrf", &token), ("since", &since)]).await;
    assert!(page.html.contains("1 failed or suspended deliveries"), "{}", page.html);
    receiver.set_status(200);
    let page = browser
        .post(&format!("/ui/webhooks/{id}/recover"), &[("csrf", &token), ("since", &since), ("confirm", "yes")])
        .await;
    assert!(page.html.contains("1 deliveries queued"), "{}", page.html);
    eventually(WAIT, || async {
        let list = app.deliveries(&id).await;
        if list.iter().any(|d| d["eventId"] == "to-recover" && d["state"] == "delivered") {
            Ok(())
        } else {
            Err(format!("{list:?}"))
        }
    })
    .await;
    app.stop().await;
}

/// Where screenshots go: `docs/screenshots` with
/// `HOOKLINE_UPDATE_SCREENSHOTS=1` (to refresh the README's), else a
/// temporary directory named in the test output.
fn screenshot_dir() -> std::path::PathBuf {
    let dir = if std::env::var_os("HOOKLINE_UPDATE_SCREENSHOTS").is_some() {
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/screenshots"))
    } else {
        std::env::temp_dir().join(format!("hookline-screenshots-{}", uuid::Uuid::new_v4().simple()))
    };
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    println!("screenshots in {}", dir.display());
    dir
}

/// In headless Chromium: sign in, create a webhook through the form (after
/// a validation error), send a test event and see it delivered with 204,
/// fail until the webhook is suspended, retry and see it healthy again; on
/// a phone-sized screen too. Screenshots of each page are saved.
#[tokio::test]
async fn in_a_real_browser() {
    let app = TestApp::spawn_with(|_, worker| worker.suspend_after_failures = 2).await;
    let receiver = Receiver::start().await;
    receiver.set_status(204);
    let shots = screenshot_dir();
    let b = hookline_e2e::WebBrowser::start().await;

    b.goto(&app.url("/ui/webhooks")).await;
    assert!(b.url().await.ends_with("/ui/login"), "redirected to sign in");
    b.screenshot(&shots.join("sign-in.png")).await;
    b.fill("#key", ADMIN_KEY).await;
    b.click("form button").await;
    assert!(b.text().await.contains("No webhooks yet"));

    b.click("a[href='/ui/webhooks/new']").await;
    b.fill("#name", "CRM sync").await;
    b.fill("#url", "ftp://not-http").await;
    b.fill("#events", "license.*, hookline.test").await;
    b.click("main form button:not([type=button])").await;
    let text = b.text().await;
    assert!(text.contains("http or https"), "the error shows beside the field: {text}");
    b.screenshot(&shots.join("form-error.png")).await;
    b.fill("#url", &receiver.url()).await;
    b.click("main form button:not([type=button])").await;
    assert!(b.text().await.contains("shown this once"));
    b.click("main a[href^='/ui/webhooks/0']").await;
    let webhook_page = b.url().await;

    b.click("form[action$='/test'] button").await;
    let text = b.wait_for_text("HTTP 204").await;
    assert!(text.contains("hookline.test"), "{text}");
    b.screenshot(&shots.join("delivery.png")).await;

    // Failures until suspended (the threshold is 2 here).
    receiver.set_status(500);
    for _ in 0..2 {
        b.goto(&webhook_page).await;
        b.click("form[action$='/test'] button").await;
        b.wait_for_text("HTTP 500").await;
    }
    b.goto(&webhook_page).await;
    b.wait_for_text("suspended (2 failed in a row)").await;
    b.screenshot(&shots.join("webhook-suspended.png")).await;

    // Retry the last failed delivery against a healthy receiver.
    receiver.set_status(204);
    b.click("main table a[href^='/ui/deliveries/']").await;
    b.click("form[action$='/retry'] button").await;
    b.wait_for_text("HTTP 204").await;
    b.goto(&webhook_page).await;
    let text = b.text().await;
    assert!(!text.contains("unhealthy") && !text.contains("failed in a row"), "healthy again: {text}");
    assert!(text.contains("healthy · active"), "{text}");
    b.screenshot(&shots.join("webhook-healthy.png")).await;

    b.goto(&app.url("/ui/webhooks")).await;
    b.screenshot(&shots.join("webhooks.png")).await;
    b.resize(390, 844).await;
    let text = b.text().await;
    assert!(text.contains("CRM sync") && text.contains("healthy"), "{text}");
    b.screenshot(&shots.join("webhooks-phone.png")).await;
    b.quit().await;
    app.stop().await;
}
