//! A real browser for the status board's tests: Debian's Chromium (installed by
//! `ops/install-chromium.sh`), headless, with a fresh profile, driven over the DevTools
//! protocol on loopback (navigate, evaluate a script, take a screenshot, forget cookies).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long Chromium may take to start and announce its DevTools endpoint.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one DevTools command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A headless Chromium with one page.
pub struct Browser {
    child: Child,
    page: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium (`/usr/bin/chromium`, or `$CHROMIUM`) with a window of `width` ×
    /// `height` and attaches to its first page.
    ///
    /// # Panics
    ///
    /// When Chromium does not start or answer.
    pub async fn start(width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().expect("a profile directory");
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
        let mut child = Command::new(&binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary} (ops/install-chromium.sh): {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let port = tokio::time::timeout(START_TIMEOUT, async {
            let mut lines = BufReader::new(stderr).lines();
            while let Some(line) = lines.next_line().await.expect("read chromium's stderr") {
                if let Some(url) = line.strip_prefix("DevTools listening on ws://127.0.0.1:") {
                    let port: u16 = url.split('/').next().unwrap().parse().unwrap();
                    // Keep draining its stderr, so that it never blocks on a full pipe.
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    return port;
                }
            }
            panic!("chromium exited without a DevTools endpoint");
        })
        .await
        .expect("chromium announces its DevTools endpoint");
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .expect("the DevTools target list")
            .json()
            .await
            .expect("JSON targets");
        let page_url = targets
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (page, _) = tokio_tungstenite::connect_async(page_url)
            .await
            .expect("attach to the page");
        let mut browser = Browser {
            child,
            page,
            next_id: 0,
            _profile: profile,
        };
        browser.command("Page.enable", json!({})).await;
        browser.command("Runtime.enable", json!({})).await;
        browser
    }

    /// Sends one DevTools command and answers its result, skipping the events in between.
    ///
    /// # Panics
    ///
    /// When the command fails or takes longer than [`COMMAND_TIMEOUT`].
    pub async fn command(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params}).to_string();
        self.page
            .send(Message::text(request))
            .await
            .expect("send a DevTools command");
        tokio::time::timeout(COMMAND_TIMEOUT, async {
            loop {
                let message = self
                    .page
                    .next()
                    .await
                    .expect("the page is attached")
                    .expect("a DevTools message");
                let Message::Text(text) = message else {
                    continue;
                };
                let answer: Value = serde_json::from_str(&text).expect("DevTools JSON");
                if answer["id"] == id {
                    assert!(answer.get("error").is_none(), "{method}: {answer}");
                    return answer["result"].clone();
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{method} took longer than {COMMAND_TIMEOUT:?}"))
    }

    /// Opens `url` in the page.
    pub async fn open(&mut self, url: &str) {
        self.command("Page.navigate", json!({"url": url})).await;
    }

    /// The value of the script `expression` in the page (a promise is awaited).
    ///
    /// # Panics
    ///
    /// When the script throws.
    pub async fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression)
            .await
            .unwrap_or_else(|thrown| panic!("{expression}: {thrown}"))
    }

    /// The value of the script `expression`, or what it threw.
    async fn try_eval(&mut self, expression: &str) -> Result<Value, Value> {
        let result = self
            .command(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        match result.get("exceptionDetails") {
            Some(thrown) => Err(thrown.clone()),
            None => Ok(result["result"]["value"].clone()),
        }
    }

    /// Waits until the script `condition` is true in the page (one that throws, say on an
    /// element not drawn yet, is not); panics naming `what` and the page's text after
    /// `patience`.
    pub async fn wait_until(&mut self, what: &str, condition: &str, patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if self.try_eval(condition).await == Ok(Value::Bool(true)) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let text = self.eval("document.body.innerText").await;
                panic!("waited {patience:?} for {what}; the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Goes to the board's page `hash` (`#/vnf/ID`, say) and waits until the script
    /// `condition` says it shows `what`.
    pub async fn show(&mut self, hash: &str, what: &str, condition: &str, patience: Duration) {
        self.eval(&format!("location.hash = {hash:?}; true")).await;
        self.wait_until(what, condition, patience).await;
    }

    /// Writes a PNG of the page to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .command("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("PNG data"))
            .expect("base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot directory");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// Forgets every cookie (signs the page out).
    pub async fn clear_cookies(&mut self) {
        self.command("Network.clearBrowserCookies", json!({})).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Fails only when it already exited; kill_on_drop reaps it.
        let _ = self.child.start_kill();
    }
}
