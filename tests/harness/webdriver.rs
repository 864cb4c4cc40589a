//! A minimal W3C WebDriver client over `chromedriver` and headless Debian
//! Chromium, for the portal's browser tests: open a page, find, click
//! (a link or button, or a checkbox), type, read text and field values, run
//! a script, take a screenshot. No browser download: `.ci/run`
//! installs Debian's `chromium` and `chromium-driver`.

use std::{path::Path, process::Stdio, time::Duration};

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium driven through chromedriver.
#[derive(Debug)]
pub struct Browser {
    http: reqwest::Client,
    session: String,
    base: String,
    _driver: tokio::process::Child,
    _profile: std::path::PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Self {
        let chromium = "/usr/bin/chromium";
        assert!(
            Path::new(chromium).exists() && Path::new("/usr/bin/chromedriver").exists(),
            "browser tests need Debian's chromium and chromium-driver (the `.ci/run` step `browser` installs them)"
        );
        let port = free_port();
        let driver = tokio::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let driver_url = format!("http://127.0.0.1:{port}");
        crate::eventually(Duration::from_secs(20), || async {
            http.get(format!("{driver_url}/status")).send().await.map(drop).map_err(|e| e.to_string())
        })
        .await;
        let profile = std::env::temp_dir().join(format!("hookline-chromium-{}", uuid::Uuid::new_v4().simple()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--disable-quic", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let created: Value = http
            .post(format!("{driver_url}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("JSON");
        let session =
            created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_owned();
        Self { http, base: format!("{driver_url}/session/{session}"), session, _driver: driver, _profile: profile }
    }

    async fn try_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.expect("chromedriver answers").json().await.expect("JSON");
        if answer["value"].get("error").is_some() { Err(answer["value"].clone()) } else { Ok(answer["value"].clone()) }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body).await {
            Ok(value) => value,
            Err(e) => panic!("webdriver {path}: {e}"),
        }
    }

    /// Waits until the page that was showing is replaced and the new one
    /// has loaded (every click here submits a form or follows a link).
    async fn wait_for_navigation(&self, old_body: &str) {
        for _ in 0..100 {
            if self.try_call(reqwest::Method::GET, &format!("/element/{old_body}/text"), None).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..100 {
            let state = self
                .try_call(
                    reqwest::Method::POST,
                    "/execute/sync",
                    Some(json!({"script": "return document.readyState", "args": []})),
                )
                .await;
            if state.is_ok_and(|s| s == "complete") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> String {
        let found =
            self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element for {css}: {found}")).to_owned()
    }

    /// Clicks what `css` selects (a link or a submit button) and waits for
    /// the next page.
    pub async fn click(&self, css: &str) {
        let body = self.find("body").await;
        let el = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/click"), Some(json!({}))).await;
        self.wait_for_navigation(&body).await;
    }

    /// Clicks what `css` selects where no page follows (a checkbox).
    pub async fn tick(&self, css: &str) {
        let el = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/click"), Some(json!({}))).await;
    }

    /// Whether the checkbox `css` selects is checked.
    pub async fn checked(&self, css: &str) -> bool {
        let el = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{el}/property/checked"), None).await == json!(true)
    }

    /// Clears the field `css` selects and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/clear"), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/value"), Some(json!({"text": text}))).await;
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        let body = self.find("body").await;
        self.call(reqwest::Method::GET, &format!("/element/{body}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body; `return` gives the result) in the page.
    pub async fn execute(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    /// The current value of the form field `css` selects.
    pub async fn value(&self, css: &str) -> String {
        let el = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{el}/property/value"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Resizes the window.
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).expect("base64 PNG");
        std::fs::write(path, bytes).expect("screenshot written");
    }

    /// Reloads until the page's text contains `needle`.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        crate::eventually(crate::WAIT, || async {
            let text = self.text().await;
            if text.contains(needle) {
                Ok(text)
            } else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let body = self.find("body").await;
                self.call(reqwest::Method::POST, "/refresh", Some(json!({}))).await;
                self.wait_for_navigation(&body).await;
                Err(text)
            }
        })
        .await
    }
}

impl Browser {
    /// Ends the session (closing Chromium) and removes its profile.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.base).send().await;
        let _ = std::fs::remove_dir_all(&self._profile);
        let _ = &self.session;
    }
}
