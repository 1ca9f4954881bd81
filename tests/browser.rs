//! The verify page (`/`) and the moderator console (`/console`) in a real browser: headless
//! Chromium from Debian's `chromium` package, driven by `playwright-core` (both installed by
//! `scripts/setup.sh`), against `hallmark serve` on port 0 with a fresh database. The scenarios
//! are in `tests/browser/console.test.mjs`; screenshots of every state go to
//! `target/browser-screenshots/`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sqlx::PgPool;

#[path = "fixtures/mod.rs"]
mod fixtures;

const CHROMIUM: &str = "/usr/bin/chromium";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where `scripts/setup.sh` put playwright-core: `HALLMARK_NODE_MODULES` (from
/// `scripts/setup.sh --print-env` or the Makefile), else the setup script's default cache folder.
fn node_modules() -> PathBuf {
    if let Some(dir) = std::env::var_os("HALLMARK_NODE_MODULES") {
        return dir.into();
    }
    let cache = std::env::var_os("HALLMARK_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("hallmark")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hallmark")))
        .unwrap_or_else(|| PathBuf::from(".cache/hallmark"));
    cache.join("node").join("node_modules")
}

/// Fails (never skips) with what to run when the browser tooling is missing.
fn require_browser_tooling() -> PathBuf {
    let modules = node_modules();
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!("{CHROMIUM} (Debian package `chromium`)"));
    }
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        missing.push("node (Debian package `nodejs`)".to_owned());
    }
    if !modules
        .join("playwright-core")
        .join("package.json")
        .exists()
    {
        missing.push(format!(
            "playwright-core in {} (npm, from tests/browser/package-lock.json)",
            modules.display()
        ));
    }
    assert!(
        missing.is_empty(),
        "the browser tests need {}; run `scripts/setup.sh` (it installs them), then \
         `eval \"$(scripts/setup.sh --print-env)\"`",
        missing.join(", ")
    );
    modules
}

struct Env {
    url: String,
    data_dir: tempfile::TempDir,
}

impl Env {
    fn new(pool: &PgPool) -> Self {
        let options = pool.connect_options();
        let database = options.get_database().expect("test database name");
        Self {
            url: format!("postgres://postgres@127.0.0.1:5432/{database}"),
            data_dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hallmark"));
        command
            .args(args)
            .env("HALLMARK__DATABASE__URL", &self.url)
            .env("HALLMARK__STORAGE__DATA_DIR", self.data_dir.path())
            .env("HALLMARK__MODEL__DIR", repo().join("models"))
            .env("HALLMARK__MODEL__DEVICE", "cpu")
            .env_remove("HALLMARK_CONFIG");
        command
    }

    fn ok(&self, args: &[&str]) -> String {
        let output: Output = self.command(args).output().unwrap();
        assert!(
            output.status.success(),
            "hallmark {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn key(&self, role: &str, name: &str) -> String {
        let key = self.ok(&["keys", "create", "--role", role, "--name", name]);
        let key = key.trim().to_owned();
        assert!(key.starts_with("hm_"), "{key}");
        key
    }
}

/// `hallmark serve` in the background; its stderr is drained by a thread for as long as it runs
/// (a full pipe would block the server), the last lines kept for failure messages.
struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<VecDeque<String>>>,
    drain: Option<JoinHandle<()>>,
}

impl Server {
    fn start(env: &Env) -> Self {
        let mut child = env
            .command(&["serve"])
            .env("HALLMARK__SERVER__PORT", "0")
            .env("HALLMARK__METRICS__LISTEN", "127.0.0.1:0")
            .env("HALLMARK__SERVER__WORKERS", "2")
            .env("HALLMARK__LOG__FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hallmark serve starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let drain = {
            let log = Arc::clone(&log);
            let echo = std::env::var_os("TEST_LOG").is_some();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if echo {
                        eprintln!("serve: {line}");
                    }
                    if line.contains("hallmark listening") {
                        if let Some(port) = listening_port(&line) {
                            let _ = port_tx.send(port);
                        }
                    }
                    let mut log = log.lock().unwrap();
                    if log.len() == 200 {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
            })
        };
        let port = match port_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "hallmark serve did not log \"hallmark listening\":\n{}",
                    log.lock()
                        .unwrap()
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        };
        Self {
            child,
            port,
            log,
            drain: Some(drain),
        }
    }

    /// The metrics listener's address, from its log line (logged right after "hallmark
    /// listening").
    fn metrics_url(&self) -> String {
        let log = self.recent_log();
        let port = log
            .lines()
            .filter(|line| line.contains("metrics listening"))
            .find_map(listening_port)
            .unwrap_or_else(|| panic!("no \"metrics listening\" line:\n{log}"));
        format!("http://127.0.0.1:{port}")
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn recent_log(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
    }
}

/// Runs `tests/browser/<script>` with node against the server, with `vars` and the browser
/// tooling in its environment; fails with its output and the server's last log lines.
async fn run_scenario(
    script: &str,
    modules: &Path,
    vars: &[(&str, &str)],
    server: &Server,
    hint: &str,
) {
    let mut command = Command::new("node");
    command
        .arg(repo().join("tests/browser").join(script))
        .current_dir(repo())
        .envs(vars.iter().copied())
        .env("HALLMARK_NODE_MODULES", modules)
        .env("HALLMARK_CHROMIUM", CHROMIUM)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output().expect("node runs"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{script} failed ({hint}):\n{stdout}\n{stderr}\n--- hallmark serve, last lines ---\n{}",
        server.recent_log()
    );
}

/// The port of the JSON log line `{"message": "hallmark listening", "port": N, ...}` (fields
/// flattened, as `log.format = "json"` writes them; nested under `fields` works too).
fn listening_port(line: &str) -> Option<u16> {
    fn find(value: &serde_json::Value) -> Option<u16> {
        match value {
            serde_json::Value::Object(map) => map
                .get("port")
                .and_then(serde_json::Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
                .or_else(|| map.values().find_map(find)),
            _ => None,
        }
    }
    find(&serde_json::from_str(line).ok()?)
}

#[sqlx::test]
async fn verify_page_and_console_in_chromium(pool: PgPool) {
    let modules = require_browser_tooling();
    let env = Env::new(&pool);
    env.ok(&["init"]);
    let moderator = env.key("moderator", "browser-moderator");
    let generator = env.key("generator", "browser-generator");
    let server = Server::start(&env);

    check_headers(&server.base_url()).await;

    let screenshots = repo().join("target").join("browser-screenshots");
    let work = tempfile::tempdir().unwrap();
    // Another producer's three-step history over an AI-declared image, and a tampered file, both
    // made by c2pa-python.
    let made = fixtures::made_by_c2pa_python();
    std::fs::copy(made.path("history.jpg"), work.path().join("other.jpg")).unwrap();
    std::fs::copy(made.path("tampered.jpg"), work.path().join("tampered.jpg")).unwrap();
    let nested = fixtures::nested_chain(50);
    std::fs::copy(nested.path("nested.jpg"), work.path().join("nested.jpg")).unwrap();
    let base = server.base_url();
    let work_dir = work.path().display().to_string();
    let shots = screenshots.display().to_string();
    run_scenario(
        "console.test.mjs",
        &modules,
        &[
            ("HALLMARK_BASE_URL", base.as_str()),
            ("HALLMARK_MODERATOR_KEY", &moderator),
            ("HALLMARK_GENERATOR_KEY", &generator),
            ("HALLMARK_SCREENSHOTS", &shots),
            ("HALLMARK_WORK_DIR", &work_dir),
        ],
        &server,
        &format!("screenshots in {shots}"),
    )
    .await;
}

/// A page on a second origin (another local port) reads the public API with `fetch()` — the
/// resolution API's algorithm list, a log tile with its ETag, a record, a match by content after
/// a preflight — and is refused by the browser itself when it calls `POST /v1/generations` with
/// a valid key; the same call from Hallmark's own origin succeeds. Scenario in
/// `tests/browser/cross_origin.test.mjs`.
#[sqlx::test]
async fn a_page_on_another_origin_reads_the_public_api_but_cannot_use_a_key(pool: PgPool) {
    let modules = require_browser_tooling();
    let env = Env::new(&pool);
    env.ok(&["init"]);
    let generator = env.key("generator", "cross-origin-generator");
    let server = Server::start(&env);
    let base = server.base_url();

    // One signed image, in a signed checkpoint of the log.
    let client = reqwest::Client::new();
    let made = client
        .post(format!("{base}/v1/generations"))
        .bearer_auth(&generator)
        .header("Accept", "image/png")
        .json(&serde_json::json!({"count": 1, "wait_for_log": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200);
    let record_id = made.headers()["x-hallmark-record-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let image = made.bytes().await.unwrap();
    let tile = fixtures::first_log_tile(&base).await;
    let work = tempfile::tempdir().unwrap();
    let image_path = work.path().join("signed.png");
    std::fs::write(&image_path, &image).unwrap();

    let image_path = image_path.display().to_string();
    run_scenario(
        "cross_origin.test.mjs",
        &modules,
        &[
            ("HALLMARK_BASE_URL", base.as_str()),
            ("HALLMARK_GENERATOR_KEY", &generator),
            ("HALLMARK_RECORD_ID", &record_id),
            ("HALLMARK_TILE", &tile),
            ("HALLMARK_IMAGE", &image_path),
        ],
        &server,
        "the page's origin and what it saw are printed above",
    )
    .await;
    // The browser asked before each non-simple request (Hallmark's own request counts): the
    // public POST's preflight was answered, the keyed one's refused, and the POST never came.
    let metrics = reqwest::get(format!("{}/metrics", server.metrics_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |method: &str, route: &str, status: &str| -> f64 {
        let series = format!(
            "hallmark_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} "
        );
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .map_or(0.0, |value| value.trim().parse().unwrap())
    };
    assert_eq!(
        count("OPTIONS", "/c2pa/v1/matches/byContent", "200"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        count("POST", "/c2pa/v1/matches/byContent", "200"),
        1.0,
        "{metrics}"
    );
    assert_eq!(count("OPTIONS", "/v1/generations", "400"), 1.0, "{metrics}");
    assert_eq!(
        count("POST", "/v1/generations", "200"),
        1.0,
        "the test's own"
    );
    assert_eq!(
        count("POST", "/v1/generations", "201"),
        1.0,
        "the same-origin page's"
    );
    // Two images: the one above and the page's same-origin call; none from the other origin.
    let records: i64 = sqlx::query_scalar("SELECT count(*) FROM records")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(records, 2);
}

/// Pages and assets: types, the security headers, ETag revalidation and versioned caching.
async fn check_headers(base: &str) {
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{base}{path}")).send();
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    for path in ["/", "/console"] {
        let page = get(path).await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
        assert_eq!(
            header(&page, "content-security-policy"),
            "default-src 'self'; img-src 'self' blob: data:"
        );
        assert_eq!(header(&page, "x-content-type-options"), "nosniff");
        assert_eq!(header(&page, "cache-control"), "no-cache");
        let etag = header(&page, "etag");
        assert!(etag.starts_with('"'), "strong ETag: {etag}");
        let again = client
            .get(format!("{base}{path}"))
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path} revalidates");
        let html = page.text().await.unwrap();
        let css = html
            .split('"')
            .find(|part| part.starts_with("/assets/app.css?v="))
            .expect("versioned stylesheet link")
            .to_owned();
        let asset = get(&css).await.unwrap();
        assert_eq!(asset.status(), 200);
        assert_eq!(header(&asset, "content-type"), "text/css; charset=utf-8");
        assert_eq!(
            header(&asset, "cache-control"),
            "public, max-age=31536000, immutable"
        );
    }
    let module = get("/assets/api.js").await.unwrap();
    assert_eq!(
        header(&module, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(header(&module, "cache-control"), "no-cache");
    assert_eq!(header(&module, "x-content-type-options"), "nosniff");
    let missing = get("/assets/nope.js").await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "asset_not_found");
}

#[test]
fn listening_port_is_read_from_the_json_log_line() {
    let line = r#"{"timestamp":"2025-01-01T00:00:00Z","level":"INFO","fields":{"message":"hallmark listening","address":"127.0.0.1","port":40123},"target":"hallmark"}"#;
    assert_eq!(listening_port(line), Some(40123));
    let flat = r#"{"timestamp":"2025-01-01T00:00:00Z","level":"INFO","message":"hallmark listening","address":"127.0.0.1","port":8080,"target":"hallmark"}"#;
    assert_eq!(listening_port(flat), Some(8080));
    assert_eq!(listening_port("hallmark listening port=1"), None);
}
