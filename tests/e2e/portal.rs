//! The admin portal over HTTP: sign-in (a CSRF-checked POST only) and
//! sessions, CSRF, the front doors, the headers every answer carries, the
//! webhook form with its validation (extra headers with a kept secret, rate
//! limit, recovery), a webhook's health changes and hourly chart, the event
//! log, a delivery and its retry, tenant scoping, admin sessions bound to
//! their key; and in headless Chromium: the whole walk, sign-in links,
//! times and line breaks.

use std::collections::BTreeMap;

use hookline_e2e::{ADMIN_KEY, Receiver, TestApp, WAIT, eventually, webhook};
use serde_json::json;

/// A browser over plain HTTP: keeps its cookies, follows no redirect.
#[derive(Clone)]
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    /// Every `Set-Cookie` of the answer, as sent.
    set_cookies: Vec<String>,
    cache_control: Option<String>,
    referrer_policy: Option<String>,
    html: String,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self::at(&app.url(""))
    }

    fn at(base: &str) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Self { http, base: base.to_owned(), cookies: BTreeMap::new() }
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let header: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let request = if header.is_empty() { request } else { request.header("cookie", header.join("; ")) };
        let response = request.send().await.expect("the portal answers");
        let headers = response.headers();
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let set_cookies: Vec<String> =
            headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
        for set in &set_cookies {
            let pair = set.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status().as_u16(),
            location: text("location"),
            set_cookies,
            cache_control: text("cache-control"),
            referrer_policy: text("referrer-policy"),
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

    /// Opens the sign-in page and posts `credential` with its form's CSRF
    /// token, as a person signing in does.
    async fn sign_in(&mut self, credential: &str) -> Page {
        let form = self.get("/ui/login").await;
        assert_eq!(form.status, 200);
        self.post("/ui/login", &[("csrf", &csrf(&form.html)), ("key", credential)]).await
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

/// The `Set-Cookie` of `name` among an answer's.
fn set_cookie<'a>(page: &'a Page, name: &str) -> Option<&'a str> {
    page.set_cookies.iter().find(|c| c.starts_with(&format!("{name}="))).map(String::as_str)
}

/// Signing in is a POST with the sign-in form's CSRF token (bound to the
/// browser's sign-in cookie); it sets a strict, HTTP-only session cookie;
/// pages need it; forms need their CSRF token; signing out ends the
/// session.
#[tokio::test]
async fn sessions_and_csrf() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/ui/webhooks").await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/ui/login")));

    let form = browser.get("/ui/login").await;
    assert_eq!(form.status, 200);
    let login_cookie = set_cookie(&form, "hookline_login").expect("a sign-in cookie");
    assert!(
        login_cookie.contains("HttpOnly")
            && login_cookie.contains("SameSite=Strict")
            && login_cookie.contains("Path=/ui/login"),
        "{login_cookie}"
    );
    let token = csrf(&form.html);
    // Without the form's token, with another browser's, or without this
    // browser's cookie (a cross-site post), nobody is signed in.
    let page = browser.post("/ui/login", &[("key", ADMIN_KEY)]).await;
    assert_eq!(page.status, 403, "no CSRF token");
    assert!(page.html.contains("sign in again") && browser.cookie("hookline_session").is_none());
    let mut other = Browser::new(&app);
    let others = csrf(&other.get("/ui/login").await.html);
    let page = browser.post("/ui/login", &[("csrf", &others), ("key", ADMIN_KEY)]).await;
    assert_eq!(page.status, 403, "another browser's token");
    let mut cross_site = Browser::new(&app);
    let page = cross_site.post("/ui/login", &[("csrf", &token), ("key", ADMIN_KEY)]).await;
    assert_eq!(page.status, 403, "no sign-in cookie");
    assert!(cross_site.cookie("hookline_session").is_none() && browser.cookie("hookline_session").is_none());

    let page = browser.post("/ui/login", &[("csrf", &token), ("key", "wrong-key-0123456789")]).await;
    assert_eq!(page.status, 401);
    assert!(page.html.contains("not valid") && !page.html.contains("wrong-key"));
    assert!(browser.cookie("hookline_session").is_none());

    let page = browser.post("/ui/login", &[("csrf", &token), ("key", ADMIN_KEY)]).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/ui/webhooks")));
    let cookie = set_cookie(&page, "hookline_session").expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/ui"),
        "{cookie}"
    );
    assert!(browser.cookie("hookline_login").is_none(), "the sign-in cookie is spent");
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
    assert!(browser.cookie("hookline_session").is_none());
    assert_eq!(browser.get("/ui/webhooks").await.status, 303);
    app.stop().await;
}

/// `/`, `/ui` and `/ui/` all lead to the webhook list, or to the sign-in
/// page without a session.
#[tokio::test]
async fn front_doors_lead_to_sign_in() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    for door in ["/", "/ui", "/ui/"] {
        let page = browser.get(door).await;
        assert_eq!((page.status, page.location.as_deref()), (303, Some("/ui/webhooks")), "{door}");
    }
    assert_eq!(browser.get("/ui/webhooks").await.location.as_deref(), Some("/ui/login"));
    browser.sign_in(ADMIN_KEY).await;
    for door in ["/", "/ui/"] {
        let next = browser.get(door).await.location.expect("a redirect");
        assert_eq!(browser.get(&next).await.status, 200, "{door}");
    }
    app.stop().await;
}

/// Every portal answer, pages, redirects and refusals alike, is
/// `Cache-Control: no-store` and `Referrer-Policy: no-referrer`.
#[tokio::test]
async fn portal_answers_are_not_stored_or_referred() {
    let app = TestApp::spawn().await;
    let id = app.create_webhook(&webhook("private", "https://example.com/a", &["*"])).await;
    let mut browser = Browser::new(&app);
    let mut pages = vec![
        ("/", browser.get("/").await),
        ("/ui/webhooks (no session)", browser.get("/ui/webhooks").await),
        ("/ui/login", browser.get("/ui/login").await),
        ("POST /ui/login (no token)", browser.post("/ui/login", &[("key", ADMIN_KEY)]).await),
        ("POST /ui/login", browser.sign_in(ADMIN_KEY).await),
    ];
    for path in ["/ui/webhooks".to_owned(), format!("/ui/webhooks/{id}"), "/ui/webhooks/not-an-id".to_owned()] {
        let page = browser.get(&path).await;
        pages.push((if page.status == 404 { "a 404 page" } else { "a page" }, page));
    }
    pages.push(("a refused form", browser.post(&format!("/ui/webhooks/{id}/resume"), &[("csrf", "x")]).await));
    let statuses: Vec<u16> = pages.iter().map(|(_, p)| p.status).collect();
    assert_eq!(statuses, [303, 303, 200, 403, 303, 200, 200, 404, 403]);
    for (what, page) in &pages {
        assert_eq!(page.cache_control.as_deref(), Some("no-store"), "{what}");
        assert_eq!(page.referrer_policy.as_deref(), Some("no-referrer"), "{what}");
    }
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
    browser.sign_in(ADMIN_KEY).await;
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
        let mut b = browser.clone();
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

/// A tenant token opens the portal on that tenant only, for no longer than
/// the token lives. An old `?token=` link signs nobody in and does not
/// repeat the token; it asks for it to be pasted.
#[tokio::test]
async fn tenant_token_sees_its_own_webhooks() {
    let app = TestApp::spawn().await;
    let mut mine = webhook("mine", "https://example.com/a", &["*"]);
    mine["tenant"] = json!("acct-a");
    let mut theirs = webhook("theirs", "https://example.com/b", &["*"]);
    theirs["tenant"] = json!("acct-b");
    app.create_webhook(&mine).await;
    let other = app.create_webhook(&theirs).await;
    let minted = app.post("/v1/tenants/acct-a/tokens", &json!({"ttlSeconds": 600})).await;
    let token = minted.body["token"].as_str().expect("a token").to_owned();

    let mut old_link = Browser::new(&app);
    let page = old_link.get(&format!("/ui/login?token={}", url_encode(&token))).await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("Paste the account token"), "{}", page.html);
    let signature = token.rsplit('.').next().expect("a signature");
    assert!(!page.html.contains(signature), "the token is not repeated");
    assert!(set_cookie(&page, "hookline_session").is_none() && old_link.cookie("hookline_session").is_none());
    assert_eq!(old_link.get("/ui/webhooks").await.status, 303, "not signed in");

    let mut browser = Browser::new(&app);
    let page = browser.sign_in(&token).await;
    assert_eq!(page.location.as_deref(), Some("/ui/webhooks"));
    let list = browser.get("/ui/webhooks").await.html;
    assert!(list.contains("mine") && !list.contains("theirs") && list.contains("account acct-a"), "{list}");
    assert_eq!(browser.get(&format!("/ui/webhooks/{other}")).await.status, 404);
    // The session lasts no longer than the token.
    let cookie = set_cookie(&page, "hookline_session").expect("a cookie");
    let max_age: i64 = cookie
        .split(';')
        .find_map(|p| p.trim().strip_prefix("Max-Age="))
        .and_then(|v| v.parse().ok())
        .expect("Max-Age");
    assert!((1..=600).contains(&max_age), "{cookie}");
    let mut forged = Browser::new(&app);
    assert_eq!(forged.sign_in(&format!("{token}x")).await.status, 401);
    app.stop().await;
}

/// An admin session opened with an API key ends when a producer runs
/// without that key (the keys come from settings, so: a restart without
/// it); one opened with a key still configured goes on.
#[tokio::test]
async fn admin_sessions_end_when_their_key_is_removed() {
    const SECOND_KEY: &str = "second-admin-key-0123456789";
    let app = TestApp::spawn_with(|producer, _| {
        producer.api_keys.push(hookline_producer::settings::Secret::new(SECOND_KEY.to_owned()));
    })
    .await;
    let mut removed = Browser::new(&app);
    assert_eq!(removed.sign_in(SECOND_KEY).await.status, 303);
    let mut kept = Browser::new(&app);
    assert_eq!(kept.sign_in(ADMIN_KEY).await.status, 303);

    // The same database, namespace and token secret; only ADMIN_KEY.
    let (settings, _) = hookline_e2e::settings(&app.db, &app.broker);
    let restarted = hookline_producer::build(&settings).await.expect("producer starts");
    let base = format!("http://{}", restarted.local_addr());
    let stop = app.shutdown.child_token();
    let task = tokio::spawn(restarted.run_until_stopped(stop.clone()));

    let mut removed_there = Browser { base: base.clone(), ..removed.clone() };
    let mut kept_there = Browser { base, ..kept.clone() };
    let page = removed_there.get("/ui/webhooks").await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/ui/login")), "the key's session ended");
    assert_eq!(kept_there.get("/ui/webhooks").await.status, 200, "another key's session goes on");
    assert_eq!(removed.get("/ui/webhooks").await.status, 200, "where the key is still configured");
    assert_eq!(removed_there.sign_in(SECOND_KEY).await.status, 401, "nor can it sign in again");
    stop.cancel();
    task.await.expect("no panic").expect("clean exit");
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
    browser.sign_in(ADMIN_KEY).await;
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

/// The form fields of a webhook pointing at `url`, with the CSRF token,
/// and `more`.
fn webhook_form<'a>(csrf: &'a str, url: &'a str, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("csrf", csrf),
        ("name", "Billing"),
        ("url", url),
        ("token", "whsec-billing-0123456789abcdef"),
        ("events", "license.*"),
        ("active", "on"),
    ];
    fields.extend_from_slice(more);
    fields
}

/// The text of the error shown beside `field`, if one is.
fn field_error(html: &str, field: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{field}-error\""))?;
    let text = html[start..].split_once('>')?.1.split('<').next()?;
    Some(text.to_owned())
}

/// The form sets extra headers (a secret among them, never shown again),
/// a rate limit and recovery; an edit that leaves the secret empty keeps
/// it (the worker sends it); a reserved header name, a secret without a
/// value and a bad rate limit are errors beside their field, with nothing
/// saved.
#[tokio::test]
async fn webhook_settings_through_the_form() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let url = receiver.url();
    let mut browser = Browser::new(&app);
    browser.sign_in(ADMIN_KEY).await;
    let form = browser.get("/ui/webhooks/new").await.html;
    assert!(form.contains("name=\"header_name_2\"") && !form.contains("name=\"header_name_3\""), "three rows");
    assert!(form.contains("name=\"rate_limit\"") && form.contains("name=\"recovery_probe\""), "{form}");
    let token = csrf(&form);

    let refused = [
        (vec![("header_name_0", "Content-Type"), ("header_value_0", "text/plain")], "headers", "set by Hookline"),
        (
            vec![("header_name_0", "X-Key"), ("header_value_0", ""), ("header_secret_0", "on")],
            "headers",
            "has no value to keep",
        ),
        (vec![("header_name_0", "X-Team"), ("header_value_0", "caf\u{e9}")], "headers", "printable ASCII"),
        (vec![("rate_limit", "0")], "rate_limit", "1 to 10000"),
        (vec![("rate_limit", "fast")], "rate_limit", "1 to 10000"),
    ];
    for (more, field, expected) in &refused {
        let page = browser.post("/ui/webhooks", &webhook_form(&token, &url, more)).await;
        assert_eq!(page.status, 422, "{more:?}");
        let error = field_error(&page.html, field).unwrap_or_else(|| panic!("no {field} error: {}", page.html));
        assert!(error.contains(expected), "{more:?}: {error}");
        assert!(page.html.contains("value=\"Billing\""), "what was typed is kept");
    }
    let page = browser
        .post(
            "/ui/webhooks",
            &webhook_form(&token, &url, &[("header_name_0", "Content-Type"), ("header_value_0", "x")]),
        )
        .await;
    assert!(page.html.contains("value=\"Content-Type\""), "the rows as typed");
    assert_eq!(app.get("/v1/webhooks").await.body["data"], json!([]), "nothing was created");

    let page = browser
        .post(
            "/ui/webhooks",
            &webhook_form(
                &token,
                &url,
                &[
                    ("header_name_0", "X-Team"),
                    ("header_value_0", "core"),
                    ("header_name_1", "Authorization"),
                    ("header_value_1", "Bearer s3cret-value"),
                    ("header_secret_1", "on"),
                    ("header_name_2", ""),
                    ("header_value_2", "no name: left out"),
                    ("rate_limit", "50"),
                    ("recovery_probe", "on"),
                    ("recovery_replay", "on"),
                ],
            ),
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.html);
    let location = page.location.expect("to the webhook");
    let id = location.trim_start_matches("/ui/webhooks/").to_owned();
    let stored = app.webhook(&id).await;
    assert_eq!(
        stored["headers"],
        json!([
            {"name": "X-Team", "value": "core", "secret": false},
            {"name": "Authorization", "value": "****", "secret": true},
        ])
    );
    assert_eq!((&stored["rateLimit"], &stored["recovery"]), (&json!(50), &json!({"probe": true, "replay": true})));

    let page = browser.get(&location).await.html;
    assert!(page.contains("50 requests/s") && page.contains("probes, and replays"), "{page}");
    assert!(page.contains("X-Team") && page.contains("core") && page.contains("****"), "{page}");
    let edit = browser.get(&format!("{location}/edit")).await.html;
    assert!(edit.contains("value=\"Authorization\"") && edit.contains("leave empty to keep"), "{edit}");
    assert!(edit.contains("value=\"50\"") && edit.contains("name=\"header_name_4\""), "two rows and three spare");
    for html in [&page, &edit] {
        assert!(!html.contains("s3cret"), "a secret value is never shown");
    }

    // An edit: the secret's value left empty (kept), the limit removed,
    // replay off.
    let edited = |more: &[(&'static str, &'static str)]| {
        let mut fields = webhook_form(&token, &url, more);
        fields.extend_from_slice(&[
            ("header_name_1", "Authorization"),
            ("header_value_1", ""),
            ("header_secret_1", "on"),
        ]);
        fields
    };
    let page = browser
        .post(
            &location,
            &edited(&[
                ("header_name_0", "X-Team"),
                ("header_value_0", "platform"),
                ("rate_limit", ""),
                ("recovery_probe", "on"),
            ]),
        )
        .await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some(location.as_str())), "{}", page.html);
    let stored = app.webhook(&id).await;
    assert_eq!(stored["headers"][0], json!({"name": "X-Team", "value": "platform", "secret": false}));
    assert_eq!(stored["headers"][1], json!({"name": "Authorization", "value": "****", "secret": true}));
    assert_eq!((&stored["rateLimit"], &stored["recovery"]), (&json!(0), &json!({"probe": true, "replay": false})));

    // Refused edits change nothing.
    for (more, field) in [
        (vec![("header_name_0", "Webhook-Id"), ("header_value_0", "x")], "headers"),
        (vec![("rate_limit", "20000")], "rate_limit"),
    ] {
        let page = browser.post(&location, &edited(&more)).await;
        assert_eq!(page.status, 422, "{more:?}");
        assert!(field_error(&page.html, field).is_some(), "{}", page.html);
        assert!(!page.html.contains("s3cret"));
    }
    assert_eq!(app.webhook(&id).await, stored, "unchanged");

    // The worker sends the headers, the kept secret's value included.
    let page = browser.post(&format!("{location}/test"), &[("csrf", &token)]).await;
    assert_eq!(page.status, 303);
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("authorization"), Some("Bearer s3cret-value"));
    assert_eq!(got[0].header("x-team"), Some("platform"));
    app.stop().await;
}

/// The sum of a `data-<what>` attribute over the chart's hours, and how
/// many hours there are.
fn chart_counts(html: &str, what: &str) -> (i64, usize) {
    let needle = format!("data-{what}=\"");
    let hours = html.matches("<g class=\"hour\"").count();
    let sum = html
        .match_indices(&needle)
        .map(|(i, _)| html[i + needle.len()..].split('"').next().and_then(|n| n.parse::<i64>().ok()).unwrap_or(0))
        .sum();
    (sum, hours)
}

/// A webhook's page lists its health changes, newest first (unhealthy
/// after a failure, with its reason once the relay has it; recovered after
/// a resume), and charts the last 24 hours' attempts: one bar per hour,
/// the delivered and failed ones counted.
#[tokio::test]
async fn webhook_page_shows_health_and_attempts() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let id = app.create_webhook(&webhook("charted", &receiver.url(), &["license.*"])).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(ADMIN_KEY).await;
    let page = browser.get(&format!("/ui/webhooks/{id}")).await.html;
    assert!(page.contains("None yet") && page.contains("role=\"img\""), "{page}");
    assert_eq!(chart_counts(&page, "delivered"), (0, 24));

    for i in 0..3 {
        app.post_event(&json!({"event": "license.created", "id": format!("ok-{i}"), "data": {}})).await;
    }
    app.settled_deliveries(&id, 3).await;
    receiver.set_status(500);
    for i in 0..2 {
        app.post_event(&json!({"event": "license.created", "id": format!("bad-{i}"), "data": {}})).await;
    }
    app.settled_deliveries(&id, 5).await;

    let page = eventually(WAIT, || async {
        let html = browser.clone().get(&format!("/ui/webhooks/{id}")).await.html;
        if html.contains("data-label=\"Reason\">HTTP 500") { Ok(html) } else { Err(html) }
    })
    .await;
    assert!(page.contains("data-label=\"Change\">unhealthy"), "{page}");
    assert!(
        page.contains(
            "<span class=\"badge healthy\">healthy</span> → <span class=\"badge unhealthy\">unhealthy</span>"
        ),
        "{page}"
    );
    assert_eq!(chart_counts(&page, "delivered"), (3, 24));
    assert_eq!(chart_counts(&page, "failed"), (2, 24));
    assert!(page.contains("3 delivered, 2 failed"), "the chart's title: {page}");
    assert!(page.contains("Delivered <strong>3</strong>") && page.contains("Failed <strong>2</strong>"), "{page}");

    let token = csrf(&page);
    browser.post(&format!("/ui/webhooks/{id}/resume"), &[("csrf", &token)]).await;
    let page = browser.get(&format!("/ui/webhooks/{id}")).await.html;
    let recovered = page.find("data-label=\"Change\">recovered").expect("a recovered change");
    let unhealthy = page.find("data-label=\"Change\">unhealthy").expect("the unhealthy change");
    assert!(recovered < unhealthy, "newest first");
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

/// Headers, badges and times that wrap onto a second line, at each width
/// (a word broken in two wraps, so none may), and whether the page is
/// wider than the window (a wide table must scroll in its own box).
async fn broken_words(b: &hookline_e2e::WebBrowser) -> Vec<String> {
    const CHECK: &str = r#"
        const broken = [];
        for (const el of document.querySelectorAll("th, .badge, time")) {
            if (el.getClientRects().length === 0) { continue; }
            const range = document.createRange();
            range.selectNodeContents(el);
            const lines = new Set();
            for (const r of range.getClientRects()) { if (r.width > 0) { lines.add(Math.round(r.top)); } }
            if (lines.size > 1) { broken.push(el.textContent.trim()); }
        }
        const page = document.documentElement;
        if (page.scrollWidth > page.clientWidth) { broken.push("the page is " + page.scrollWidth + " px wide"); }
        return broken;
    "#;
    let mut found = Vec::new();
    for width in [1280, 1024, 800, 660, 500, 390, 320] {
        b.resize(width, 900).await;
        let broken = b.execute(CHECK).await;
        for what in broken.as_array().into_iter().flatten() {
            found.push(format!("at {width} px: {what}"));
        }
    }
    b.resize(1280, 900).await;
    found
}

/// In headless Chromium: sign in, create a webhook through the form with
/// extra headers (one secret, typed again after a validation error: it is
/// not shown back), a rate limit and probing; see them on its page (the
/// secret as `****`) and in the edit form (the secret's value empty, kept
/// on saving); send a test event and see it delivered with 204 and the
/// headers; fail until the webhook is suspended and see the health changes
/// and the day's chart; retry and see it healthy again; on a phone-sized
/// screen too. Times read `… UTC · … ago`; no header, badge
/// or time breaks inside a word at any width. An account signs in from a
/// `#token=` link (the token leaves the address bar; the button signs in);
/// an old `?token=` link does not sign in. Screenshots of each page are
/// saved.
#[tokio::test]
async fn in_a_real_browser() {
    let app = TestApp::spawn_with(|_, worker| worker.suspend_after_failures = 2).await;
    let receiver = Receiver::start().await;
    receiver.set_status(204);
    let shots = screenshot_dir();
    let b = hookline_e2e::WebBrowser::start().await;
    let time = regex::Regex::new(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC · (just now|\d+ (s|min|h|d) ago)")
        .expect("a regex");
    let rfc3339 = regex::Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:").expect("a regex");

    b.goto(&app.url("/")).await;
    assert!(b.url().await.ends_with("/ui/login"), "redirected to sign in");
    b.screenshot(&shots.join("sign-in.png")).await;
    b.fill("#key", ADMIN_KEY).await;
    b.click("#sign-in").await;
    assert!(b.text().await.contains("No webhooks yet"));

    b.click("a[href='/ui/webhooks/new']").await;
    b.fill("#name", "CRM sync").await;
    b.fill("#url", "ftp://not-http").await;
    b.fill("#events", "license.*, hookline.test").await;
    b.fill("input[name=header_name_0]", "X-Team").await;
    b.fill("input[name=header_value_0]", "core").await;
    b.fill("input[name=header_name_1]", "Authorization").await;
    b.fill("input[name=header_value_1]", "Bearer s3cret-value").await;
    b.tick("input[name=header_secret_1]").await;
    b.fill("#rate_limit", "100").await;
    b.tick("input[name=recovery_probe]").await;
    b.click("main form button:not([type=button])").await;
    let text = b.text().await;
    assert!(text.contains("http or https"), "the error shows beside the field: {text}");
    b.screenshot(&shots.join("form-error.png")).await;
    // What was typed is kept, except the secret value: typed again.
    assert_eq!(b.value("input[name=header_value_0]").await, "core");
    assert_eq!(b.value("input[name=header_value_1]").await, "");
    assert!(b.checked("input[name=header_secret_1]").await && b.checked("input[name=recovery_probe]").await);
    assert!(text.contains("Not shown back: type it again") && !text.contains("s3cret"), "{text}");
    let broken = broken_words(&b).await;
    assert!(broken.is_empty(), "the form: {broken:?}");
    b.fill("#url", &receiver.url()).await;
    b.fill("input[name=header_value_1]", "Bearer s3cret-value").await;
    b.click("main form button:not([type=button])").await;
    assert!(b.text().await.contains("shown this once"));
    b.click("main a[href^='/ui/webhooks/0']").await;
    let webhook_page = b.url().await;
    let text = b.text().await;
    assert!(text.contains("Rate limit: 100 requests/s · While suspended: probes, resumes on a 2xx"), "{text}");
    assert!(text.contains("X-Team") && text.contains("**** (secret)") && !text.contains("s3cret"), "{text}");
    assert!(text.contains("Delivered 0 · Failed 0"), "an empty chart: {text}");

    // Editing keeps the secret, which is not in the form.
    b.click("main a[href$='/edit']").await;
    assert_eq!(b.value("input[name=header_name_1]").await, "Authorization");
    assert_eq!(b.value("input[name=header_value_1]").await, "");
    assert_eq!(b.value("#rate_limit").await, "100");
    assert!(b.text().await.contains("Secret: leave empty to keep."));
    b.execute("document.querySelector('input[name=header_name_1]').scrollIntoView()").await;
    b.screenshot(&shots.join("form-settings.png")).await;
    let broken = broken_words(&b).await;
    assert!(broken.is_empty(), "the edit form: {broken:?}");
    b.fill("input[name=header_value_0]", "platform").await;
    b.click("main form button:not([type=button])").await;
    assert_eq!(b.url().await, webhook_page);

    b.click("form[action$='/test'] button").await;
    let text = b.wait_for_text("HTTP 204").await;
    assert!(text.contains("hookline.test"), "{text}");
    assert!(time.is_match(&text), "times read `… UTC · … ago`: {text}");
    b.screenshot(&shots.join("delivery.png")).await;
    let broken = broken_words(&b).await;
    assert!(broken.is_empty(), "the delivery page: {broken:?}");
    let sent = receiver.wait_for(1, WAIT).await;
    assert_eq!(sent[0].header("authorization"), Some("Bearer s3cret-value"));
    assert_eq!(sent[0].header("x-team"), Some("platform"));

    // Failures until suspended (the threshold is 2 here).
    receiver.set_status(500);
    for _ in 0..2 {
        b.goto(&webhook_page).await;
        b.click("form[action$='/test'] button").await;
        b.wait_for_text("HTTP 500").await;
    }
    b.goto(&webhook_page).await;
    let text = b.wait_for_text("suspended (2 failed in a row)").await;
    assert!(time.is_match(&text) && !rfc3339.is_match(&text), "times read `… UTC · … ago`: {text}");
    b.screenshot(&shots.join("webhook-suspended.png")).await;
    let broken = broken_words(&b).await;
    assert!(broken.is_empty(), "the webhook page: {broken:?}");
    // Its health changes, newest first, and the day's attempts charted.
    let changes =
        b.execute("return [...document.querySelectorAll('td[data-label=Change]')].map(td => td.textContent)").await;
    assert_eq!(changes, json!(["suspended", "unhealthy"]));
    assert!(text.contains("Delivered 1 · Failed 2"), "{text}");
    let bars = b
        .execute(
            "const g = [...document.querySelectorAll('svg[role=img] g.hour')];
             return [g.length, g.reduce((n, h) => n + Number(h.dataset.delivered), 0),
                     g.reduce((n, h) => n + Number(h.dataset.failed), 0),
                     document.querySelectorAll('svg[role=img] rect[fill=\"#ea580c\"]').length > 0]",
        )
        .await;
    assert_eq!(bars, json!([24, 1, 2, true]));
    let label = b.execute("return document.getElementById('chart-title').textContent").await;
    assert_eq!(label, json!("Attempts per hour over the last 24 hours: 1 delivered, 2 failed"));
    // The reasons, once the relay has announced the changes.
    b.wait_for_text("HTTP 500").await;
    b.execute("document.querySelector('figure.chart').scrollIntoView()").await;
    b.screenshot(&shots.join("webhook-health.png")).await;

    // Retry the last failed delivery against a healthy receiver.
    receiver.set_status(204);
    b.goto(&webhook_page).await;
    b.click("main table a[href^='/ui/deliveries/']").await;
    b.click("form[action$='/retry'] button").await;
    b.wait_for_text("HTTP 204").await;
    b.goto(&webhook_page).await;
    let text = b.text().await;
    let status = b.execute("return document.querySelector('main .badge').textContent").await;
    assert_eq!(status, json!("healthy"), "healthy again: {text}");
    assert!(text.contains("healthy · active"), "{text}");
    let changes =
        b.execute("return [...document.querySelectorAll('td[data-label=Change]')].map(td => td.textContent)").await;
    assert_eq!(changes, json!(["recovered", "suspended", "unhealthy"]));
    b.screenshot(&shots.join("webhook-healthy.png")).await;

    b.goto(&app.url("/ui/webhooks")).await;
    let text = b.text().await;
    assert!(time.is_match(&text) && !rfc3339.is_match(&text), "times read `… UTC · … ago`: {text}");
    b.screenshot(&shots.join("webhooks.png")).await;
    let broken = broken_words(&b).await;
    assert!(broken.is_empty(), "the webhook list: {broken:?}");
    b.resize(390, 844).await;
    let text = b.text().await;
    assert!(text.contains("CRM sync") && text.contains("healthy"), "{text}");
    b.screenshot(&shots.join("webhooks-phone.png")).await;
    b.resize(1280, 900).await;

    // An account's link: the token only in the fragment.
    let minted = app.post("/v1/tenants/default/tokens", &json!({"ttlSeconds": 600})).await;
    let token = minted.body["token"].as_str().expect("a token").to_owned();
    b.click("header form button").await;
    assert!(b.url().await.ends_with("/ui/login"), "signed out");
    b.goto(&app.url(&format!("/ui/login?token={}", url_encode(&token)))).await;
    assert!(b.text().await.contains("Paste the account token"), "an old link asks for the token");
    assert!(b.url().await.ends_with("/ui/login"), "and takes it out of the address bar");
    assert_eq!(b.value("#key").await, "", "an old link fills nothing in");
    b.goto("about:blank").await;
    b.goto(&app.url(&format!("/ui/login#token={}", url_encode(&token)))).await;
    assert!(b.url().await.ends_with("/ui/login"), "the token leaves the address bar: {}", b.url().await);
    assert_eq!(b.value("#key").await, token);
    let text = b.text().await;
    assert!(text.contains("signs you in to the account “default”"), "{text}");
    b.screenshot(&shots.join("sign-in-link.png")).await;
    b.click("#sign-in").await;
    let text = b.text().await;
    assert!(text.contains("account default") && text.contains("CRM sync"), "{text}");
    b.quit().await;
    app.stop().await;
}
