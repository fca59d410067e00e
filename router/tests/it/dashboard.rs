//! The dashboard (issue 21), in a real browser: headless Chromium driven by
//! chromedriver over the WebDriver HTTP protocol, against a running router with
//! an admin token, a handler that emits, a transform and a dead letter. Each
//! panel is clicked through and photographed to `/tmp/dash-<panel>.png`.
//!
//! Chromium and chromedriver are required (`.ci/run` installs Debian's
//! `chromium` and `chromium-driver`): without them this test fails, it does not
//! skip.

use crate::common::*;
use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const TOKEN: &str = "dashboard-token-0123456789";

/// The key WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process, killed on drop (a failed start included).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A chromedriver process and one browser session of it; both end on drop.
struct Browser {
    /// Held for its drop, after the session's.
    _driver: Driver,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    /// Starts chromedriver on a port of its choosing and a headless Chromium.
    async fn start() -> Self {
        let driver_path = which("chromedriver");
        let chromium = which("chromium");
        let mut driver = Driver(
            Command::new(&driver_path)
                .arg("--port=0")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_path.display())),
        );
        let stdout = driver.0.stdout.take().expect("chromedriver stdout");
        // chromedriver prints "... started successfully on port N." once it listens.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|p| p.trim_end_matches('.').trim().parse::<u16>().ok())
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(PATIENCE)
            .expect("chromedriver never said where it listens");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let answer = http
            .post(format!("{base}/session"))
            .header("content-type", "application/json")
            .body(
                json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1500,950",
                         "--no-first-run", "--disable-extensions"],
            } } } })
                .to_string(),
            )
            .send()
            .await
            .expect("new session")
            .bytes()
            .await
            .expect("session answer");
        let answer: Value = serde_json::from_slice(&answer).expect("session JSON");
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused a session: {answer}"))
            .to_owned();
        Self {
            _driver: driver,
            base,
            session,
            http,
        }
    }

    /// A WebDriver command; panics with the driver's error, if any.
    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method.clone(), url);
        if method != reqwest::Method::GET {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let answer = request
            .send()
            .await
            .expect("webdriver")
            .bytes()
            .await
            .expect("webdriver answer");
        let answer: Value = serde_json::from_slice(&answer).expect("webdriver JSON");
        assert!(
            answer["value"].get("error").is_none(),
            "{method} {path}: {answer}"
        );
        answer["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// Runs `script` (a function body) in the page and returns its value.
    async fn eval(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Waits until `script` returns something truthy, and returns it.
    async fn until(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self.eval(script).await;
            if !matches!(value, Value::Null | Value::Bool(false))
                && value != json!("")
                && value != json!(0)
            {
                return value;
            }
            assert!(Instant::now() < deadline, "the page never showed {what}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    /// Clicks `css` as a user would (WebDriver scrolls to it and checks it can
    /// be clicked).
    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// Types `text` into `css` after clearing it.
    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            json!({}),
        )
        .await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Saves a screenshot of the window to `/tmp/dash-<name>.png`.
    async fn screenshot(&self, name: &str) {
        let png = self
            .command(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("screenshot base64"))
            .expect("screenshot PNG");
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        let path = format!("/tmp/dash-{name}.png");
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the browser with the session, then the driver: nothing is left
        // running after a failed test either.
        // A plain blocking request: no runtime is at hand in `drop`.
        if let Ok(mut stream) =
            std::net::TcpStream::connect(self.base.trim_start_matches("http://"))
        {
            use std::io::{Read as _, Write as _};
            let _ = stream.set_read_timeout(Some(PATIENCE));
            let _ = write!(
                stream,
                "DELETE /session/{} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
        // `driver` is killed next, as the field is dropped.
    }
}

/// `GET /admin/<what>` with the token, as JSON.
async fn admin(router: &TestRouter, what: &str) -> Value {
    client()
        .get(format!("{}/admin/{what}", router.admin_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("admin request")
        .bytes()
        .await
        .map(|body| serde_json::from_slice(&body).expect("admin JSON"))
        .expect("admin answer")
}

/// The path of `program` on `PATH`; panics (with how to install it) when it
/// is missing: the test must not pass without a browser.
fn which(program: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{program} is not installed: the dashboard test needs a real browser \
                 (`apt-get install -y chromium chromium-driver`, as .ci/run does)"
            )
        })
}

/// Every panel of the dashboard, clicked through in Chromium with the admin
/// token: the route graph with an emitted type's edge, the plugins and their
/// breakers, the per-route rates, a dead letter redriven from its button, and
/// an explanation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_every_panel_in_a_browser() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let flaky = Sink::start().await;
    let router = TestRouter::start(&format!(
        r#"
[admin]
token = "{TOKEN}"

[delivery.dead_letter]
file = {dlq:?}

[delivery.retry]
max_attempts = 1

[[route]]
name = "dash-orders"
filter = {{ exact = {{ type = "order.created" }} }}
transform = [ {{ set = "subject", value = "from the dashboard test" }} ]
handler = "enricher"

[[route]]
name = "dash-enriched"
filter = {{ suffix = {{ type = ".enriched" }} }}
forward = "{sink}"

[[route]]
name = "dash-payments"
filter = {{ exact = {{ type = "payment.made" }} }}
forward = "{flaky}"
"#,
        dlq = dir.path().join("dlq.jsonl").display().to_string(),
        sink = sink.url(),
        flaky = flaky.url(),
    ))
    .await;
    for i in 0..3 {
        let (status, body) = post_binary(
            &router.events_url(),
            &ce_headers(&format!("o-{i}"), "order.created"),
            "{}",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    flaky.answer(StatusCode::INTERNAL_SERVER_ERROR);
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("p-1", "payment.made"),
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "dead-lettered: {body}");
    flaky.answer(StatusCode::OK);

    // The page holds no data: it is served without the token, with a policy
    // that lets it talk to this listener only; nothing else is.
    let page = client()
        .get(format!("{}/dashboard", router.admin_url()))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("CSP")
        .to_owned();
    assert!(
        csp.contains("connect-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(
        page.text()
            .await
            .expect("page")
            .contains("<title>router dashboard</title>")
    );
    for path in ["/admin/routes", "/dashboard/x", "/metrics"] {
        let refused = client()
            .get(format!("{}{path}", router.admin_url()))
            .send()
            .await
            .expect("admin request");
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{path}");
    }

    let browser = Browser::start().await;
    let page = format!("{}/dashboard", router.admin_url());
    browser.go(&page).await;
    // Without the token the page loads but the API refuses: it says so.
    let refused = browser
        .until(
            "the token request",
            "const s = document.getElementById('status'); return s.classList.contains('show') && s.textContent;",
        )
        .await;
    assert!(
        refused.as_str().unwrap_or_default().contains("token"),
        "{refused}"
    );
    browser.type_into("#token", TOKEN).await;
    browser.click("#token-save").await;

    // Routes: a lane per route, the transform, the handler, and the type the
    // handler emitted drawn as an edge to the route it fed.
    let lanes = browser
        .until(
            "the route lanes",
            "return document.querySelectorAll('#graph .lane').length;",
        )
        .await;
    assert_eq!(lanes, json!(3));
    let lane = browser
        .eval("return document.querySelector('.lane[data-route=dash-orders]').textContent;")
        .await;
    let lane = lane.as_str().unwrap_or_default();
    for part in ["set subject", "enricher", "order.created.enriched"] {
        assert!(lane.contains(part), "{part} in {lane:?}");
    }
    assert_eq!(
        browser
            .eval("return document.querySelectorAll('#graph svg path[data-edge=\"dash-enriched\"]').length;")
            .await,
        json!(1),
        "one edge from the emitted type to the route it fed"
    );
    assert_eq!(
        browser
            .eval("return document.getElementById('status').classList.contains('show');")
            .await,
        json!(false),
        "the token banner is gone"
    );
    browser.screenshot("routes").await;

    // Plugins: every plugin with its hash and a closed breaker.
    browser.click("#tabs button[data-panel=plugins]").await;
    let row = browser
        .until(
            "the enricher's row",
            "const r = document.querySelector('#plugins-table tr[data-plugin=enricher]'); return r && r.textContent;",
        )
        .await;
    let row = row.as_str().unwrap_or_default();
    assert!(row.contains("closed"), "{row}");
    let sha = admin(&router, "plugins").await["plugins"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "enricher"))
        .map(|p| p["sha256"].as_str().unwrap_or_default().to_owned())
        .expect("enricher in /admin/plugins");
    assert!(row.contains(&sha[..12]), "{row} shows {sha}");
    assert_eq!(
        browser
            .eval("return document.getElementById('reload').textContent.includes('none');")
            .await,
        json!(true),
        "no reload error"
    );
    browser.screenshot("plugins").await;

    // Rates: the counters per route, then rates once two polls are in.
    browser.click("#tabs button[data-panel=rates]").await;
    let orders = browser
        .until(
            "the orders counters",
            "const r = document.querySelector('#rates-table tr[data-route=dash-orders]'); return r && [...r.cells].map(c => c.textContent);",
        )
        .await;
    assert_eq!(orders[5], json!("3"), "matched: {orders}");
    let payments = browser
        .eval("return [...document.querySelector('#rates-table tr[data-route=dash-payments]').cells].map(c => c.textContent);")
        .await;
    assert_eq!(payments[9], json!("1"), "dead-lettered: {payments}");
    // Live: events sent while the panel is shown move the rate of their route.
    for i in 3..8 {
        let (status, body) = post_binary(
            &router.events_url(),
            &ce_headers(&format!("o-{i}"), "order.created"),
            "{}",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    browser
        .until(
            "the orders rate",
            "const r = document.querySelector('#rates-table tr[data-route=dash-orders]'); return r && r.cells[5].textContent === '8' && Number(r.cells[1].textContent) > 0;",
        )
        .await;
    let totals = browser
        .eval("return document.getElementById('totals').textContent;")
        .await;
    // The totals are the test process's, which other tests share.
    let dead_lettered = totals
        .as_str()
        .unwrap_or_default()
        .split("accepted: dead_lettered")
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        });
    assert!(dead_lettered >= Some(1), "{totals}");
    browser.screenshot("rates").await;

    // Dead letters: the payment's, redriven by its button to the now healthy sink.
    browser.click("#tabs button[data-panel=dlq]").await;
    let id = browser
        .until(
            "the dead letter",
            "const r = document.querySelector('#dlq-table tr[data-id]'); return r && r.dataset.id;",
        )
        .await;
    let id = id.as_str().expect("dead letter id").to_owned();
    let row = browser
        .eval("return document.querySelector('#dlq-table tr[data-id]').textContent;")
        .await;
    assert!(
        row.as_str().unwrap_or_default().contains("dash-payments"),
        "{row}"
    );
    browser.screenshot("dlq").await;
    let before = flaky.received().len();
    browser.click("#dlq-table tr[data-id] button.redrive").await;
    let answer = browser
        .until(
            "the redrive's answer",
            "return document.getElementById('dlq-answer').textContent;",
        )
        .await;
    assert_eq!(answer, json!("redriven 1 of 1"));
    assert_eq!(flaky.wait_for(before + 1).await.len(), before + 1);
    let left = admin(&router, "dlq").await;
    assert_eq!(left["count"], json!(0), "{left} (was {id})");
    browser
        .until(
            "the emptied list",
            "return document.getElementById('dlq-count').textContent === '(0)';",
        )
        .await;
    browser.screenshot("dlq-redriven").await;

    // Explain: a pasted event, the routes it matches and the clause that
    // failed on the others.
    browser.click("#tabs button[data-panel=explain]").await;
    browser
        .type_into(
            "#explain-input",
            r#"{"specversion":"1.0","id":"x-1","source":"/s","type":"order.created"}"#,
        )
        .await;
    browser.click("#explain-run").await;
    let summary = browser
        .until(
            "the explanation",
            "const s = document.getElementById('explain-summary'); return s && s.textContent;",
        )
        .await;
    assert_eq!(summary, json!("order.created (x-1): 1 of 3 route(s) match"));
    let hit = browser
        .eval("return document.querySelector('.explain-route.hit').textContent;")
        .await;
    let hit = hit.as_str().unwrap_or_default();
    assert!(
        hit.contains("dash-orders") && hit.contains("set subject"),
        "{hit}"
    );
    let miss = browser
        .eval("return document.querySelector('.explain-route.miss[data-route=dash-payments]').textContent;")
        .await;
    assert!(
        miss.as_str().unwrap_or_default().contains("failed:"),
        "{miss}"
    );
    browser.screenshot("explain").await;
    // A broken paste is answered, not a blank panel.
    browser.type_into("#explain-input", "{not json").await;
    browser.click("#explain-run").await;
    browser
        .until(
            "the explain error",
            "const e = document.getElementById('explain-error'); return e && e.textContent.includes('invalid CloudEvent');",
        )
        .await;
}
