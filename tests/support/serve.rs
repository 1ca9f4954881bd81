//! Running the real `hallmark` binary in tests: a database of its own ([`TestDb`]), the
//! binary with a private configuration ([`Env`]: `init`, `keys create`, `serve`) and a running
//! `hallmark serve` that SIGKILL ends ([`Server`]). Shared by `tests/faults.rs`,
//! `tests/tlog.rs` and `tests/replicas.rs` (`#[path = "support/serve.rs"] mod serve;`).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sqlx::migrate::MigrateDatabase;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/hallmark";
/// Longest wait for `/readyz` after a start: a guard against a hang, not a performance check.
pub const READY_LIMIT: Duration = Duration::from_secs(120);

/// A database of its own on the server `DATABASE_URL` names; dropped at the end (best effort).
pub struct TestDb {
    pub url: String,
}

impl TestDb {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "hallmark_faults_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into());
        let (base, query) = match base.split_once('?') {
            Some((base, query)) => (base.to_owned(), format!("?{query}")),
            None => (base, String::new()),
        };
        let authority = base.find("://").map_or(0, |i| i + 3);
        let server = base[authority..]
            .find('/')
            .map_or(base.as_str(), |i| &base[..authority + i]);
        Self {
            url: format!("{server}/{name}{query}"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let url = self.url.clone();
        // Its own thread and runtime: drop may run inside (or after) the test's runtime.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(sqlx::Postgres::force_drop_database(&url))
                .map_err(|e| e.to_string())
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("faults: could not drop the test database: {error}");
        }
    }
}

/// How the binary is run: a private database and data directory, the shipped model on the CPU,
/// nothing inherited from the caller's HALLMARK settings.
pub struct Env {
    pub binary: PathBuf,
    /// Holds the binary's pinned copy.
    _pin: Option<tempfile::TempDir>,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// Settings for every command, as `HALLMARK__...` variables, after the defaults above.
    settings: Vec<(String, String)>,
}

impl Env {
    pub fn new(database_url: &str, data_dir: &Path) -> Self {
        let (binary, pin) = pin_binary();
        Self {
            binary,
            _pin: pin,
            database_url: database_url.to_owned(),
            data_dir: data_dir.to_path_buf(),
            log: data_dir.join("serve.log"),
            settings: Vec::new(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("HALLMARK_") {
                command.env_remove(name);
            }
        }
        command
            .args(args)
            .env_remove("RUST_LOG")
            .env("HALLMARK__DATABASE__URL", &self.database_url)
            .env("HALLMARK__STORAGE__DATA_DIR", &self.data_dir)
            .env(
                "HALLMARK__MODEL__DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
            )
            .env("HALLMARK__MODEL__DEVICE", "cpu")
            .env("HALLMARK__LOG__LEVEL", "warn")
            .env("HALLMARK__SERVER__WORKERS", "2")
            // The checks read hundreds of records from one address.
            .env("HALLMARK__API__PUBLIC_RATE_PER_S", "100000")
            .env("HALLMARK__API__PUBLIC_BURST", "100000")
            .stdin(Stdio::null());
        for (name, value) in &self.settings {
            command.env(name, value);
        }
        command
    }

    /// Sets a setting for every later command, e.g.
    /// `set("HALLMARK__TRANSPARENCY_LOG__CHECKPOINT_INTERVAL_MS", "100")`.
    pub fn set(&mut self, name: &str, value: &str) {
        self.settings.push((name.to_owned(), value.to_owned()));
    }

    /// Another replica's: the same pinned binary, database and settings, with its own data
    /// directory (and log) in `data_dir`. It shares this one's pin, so it must not outlive it.
    pub fn replica(&self, data_dir: &Path) -> Self {
        Self {
            binary: self.binary.clone(),
            _pin: None,
            database_url: self.database_url.clone(),
            data_dir: data_dir.to_path_buf(),
            log: data_dir.join("serve.log"),
            settings: self.settings.clone(),
        }
    }

    /// Runs a command to completion; its stdout, or a failed test.
    pub fn ok(&self, args: &[&str]) -> String {
        let Output {
            status,
            stdout,
            stderr,
        } = self.command(args).output().unwrap();
        assert!(
            status.success(),
            "hallmark {args:?}: {status}: {}",
            String::from_utf8_lossy(&stderr)
        );
        String::from_utf8(stdout).unwrap()
    }

    /// A new API key of `role` named `name` (`hallmark keys create`).
    pub fn key(&self, role: &str, name: &str) -> String {
        self.ok(&["keys", "create", "--role", role, "--name", name])
            .trim()
            .to_owned()
    }

    /// Starts `hallmark serve` on a free port and waits until `/readyz` answers 200.
    pub async fn serve(&self) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = self
            .command(&["serve"])
            .env("HALLMARK__SERVER__PORT", port.to_string())
            .env("HALLMARK__METRICS__LISTEN", "127.0.0.1:0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("hallmark serve starts");
        let mut server = Server {
            child,
            address: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "hallmark serve exited before ready: {status}{}",
                    self.log_tail()
                );
            }
            let ready = client.get(server.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
                return server;
            }
            assert!(
                started.elapsed() < READY_LIMIT,
                "hallmark serve not ready within {READY_LIMIT:?}{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The end of the service's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(4000);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        format!("\n--- serve log (end) ---\n{}", &log[start..])
    }
}

/// A hard link to the built binary, so that every start in one test runs the same build even
/// when a concurrent `cargo build` or `cargo test` replaces `target/debug/hallmark` meanwhile
/// (init with one build and serve with another fails on the migrations). The path itself where
/// no link can be made.
pub fn pin_binary() -> (PathBuf, Option<tempfile::TempDir>) {
    let built = Path::new(env!("CARGO_BIN_EXE_hallmark"));
    let Ok(dir) = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")) else {
        return (built.to_path_buf(), None);
    };
    let pinned = dir.path().join("hallmark");
    match std::fs::hard_link(built, &pinned) {
        Ok(()) => (pinned, Some(dir)),
        Err(_) => (built.to_path_buf(), None),
    }
}

/// A running `hallmark serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub address: String,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Records generated with `key` (`count` images from `seed`, answered 201): their ids.
    pub async fn generate_records(&self, key: &str, count: u32, seed: u64) -> Vec<String> {
        let response = reqwest::Client::new()
            .post(self.url("/v1/generations"))
            .bearer_auth(key)
            .json(&serde_json::json!({ "count": count, "seed": seed }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: serde_json::Value = response.json().await.unwrap();
        body["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|image| image["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The body of a GET of `path`, as text.
    pub async fn text(&self, path: &str) -> String {
        reqwest::get(self.url(path))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The report of `POST /v1/verify` of `bytes` with `key` (answered 200).
    pub async fn verify(&self, key: &str, bytes: Vec<u8>) -> serde_json::Value {
        let response = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
            .post(self.url("/v1/verify"))
            .bearer_auth(key)
            .header("Content-Type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Generates two images a request on `url` until `stop`, riding out a killed server (refused or
/// reset connections are retried); the `images` of every 201 answer, each answer counted in
/// `answered` as it comes.
pub async fn generate_until(
    url: String,
    key: String,
    first_seed: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<serde_json::Value> {
    use std::sync::atomic::Ordering;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut images = Vec::new();
    let mut seed = first_seed;
    while !stop.load(Ordering::SeqCst) {
        seed += 1;
        let sent = client
            .post(&url)
            .bearer_auth(&key)
            .json(&serde_json::json!({ "count": 2, "seed": seed }))
            .send()
            .await;
        let Ok(response) = sent else {
            // The kill: connection refused or reset.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if response.status() != StatusCode::CREATED {
            continue;
        }
        let Ok(body) = response.json::<serde_json::Value>().await else {
            continue;
        };
        images.extend(body["images"].as_array().cloned().unwrap_or_default());
        answered.fetch_add(1, Ordering::SeqCst);
    }
    images
}

/// The same pixels in a new PNG: no Content Credentials, another file hash.
pub fn stripped(bytes: &[u8]) -> Vec<u8> {
    let image = image::load_from_memory(bytes).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}
