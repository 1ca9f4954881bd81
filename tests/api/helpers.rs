use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hallmark::config::Settings;
use hallmark::provenance::pki::init_pki;
use hallmark::provenance::SigningIdentity;
use hallmark::store::api_keys::{self, Role};
use hallmark::store::signing_keys::register as register_signing_key;
use hallmark::Application;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

pub struct TestApp {
    pub address: String,
    /// The metrics listener (`metrics.listen`), when it is on.
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    pub pool: PgPool,
    /// Removed with the app.
    pub _data_dir: tempfile::TempDir,
    pub settings: Settings,
}

/// The repository's `models/` with the shipped model.
pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// Settings for a test: port 0, a throw-away data directory with a fresh PKI, the shipped model,
/// logs silenced unless TEST_LOG is set.
pub fn test_settings(data_dir: &Path) -> Settings {
    let mut settings = Settings::load(None).expect("default settings");
    settings.server.port = 0;
    settings.server.workers = 2;
    settings.storage.data_dir = data_dir.to_path_buf();
    settings.model.dir = models_dir();
    settings.model.device = "cpu".into();
    // Tests run side by side: the metrics listener on a free port, not the shared 9464.
    settings.metrics.listen = "127.0.0.1:0".into();
    if std::env::var_os("TEST_LOG").is_some() {
        hallmark::telemetry::init(&settings.log);
    }
    init_pki(&settings.storage.keys_dir(), 30, None).expect("test PKI");
    settings
}

/// Starts the app on `pool` (a fresh, migrated database from `#[sqlx::test]`).
pub async fn spawn_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, |_| {}).await
}

/// As [`spawn_app`], with settings changed by `adjust` first.
pub async fn spawn_app_with(pool: PgPool, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(data_dir.path());
    adjust(&mut settings);
    let identity = SigningIdentity::load(&settings).expect("signing identity");
    register_signing_key(&pool, &identity)
        .await
        .expect("key registered");
    spawn_with(settings, pool, data_dir)
}

pub fn spawn_with(settings: Settings, pool: PgPool, data_dir: tempfile::TempDir) -> TestApp {
    let app = Application::build_with_pool(settings.clone(), pool.clone()).expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        metrics_address,
        // Idle connections are dropped well before the server's keep-alive (15 s) closes them:
        // a pooled connection the server has just closed, picked for the next request before
        // the client saw the close, fails with `IncompleteMessage` (seen under load, when a test
        // spends longer than the keep-alive between two requests).
        client: reqwest::Client::builder()
            .pool_idle_timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap(),
        pool,
        _data_dir: data_dir,
        settings,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `GET path` (no key) and its JSON body.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A new API key with `role`, straight through the store.
    pub async fn key(&self, role: Role) -> String {
        let key = api_keys::create(&self.pool, "test", role).await.unwrap();
        key.secret.expose_secret().to_owned()
    }

    pub async fn generate(&self, key: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/generations"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Records generated with `key` and `seed` (answered 201), without fetching the files:
    /// their ids.
    pub async fn generate_records(&self, key: &str, count: u32, seed: u64) -> Vec<String> {
        let response = self
            .generate(key, serde_json::json!({ "count": count, "seed": seed }))
            .await;
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        body["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|image| image["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// One image generated with `key` and `seed` (answered 201): the answer's JSON, and the
    /// signed bytes as served.
    pub async fn generate_one(&self, key: &str, seed: u64) -> (serde_json::Value, Vec<u8>) {
        let response = self
            .generate(key, serde_json::json!({ "count": 1, "seed": seed }))
            .await;
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        let url = body["images"][0]["image_url"].as_str().unwrap().to_owned();
        let bytes = self.bytes_with_key(key, &url).await;
        (body, bytes)
    }

    /// `GET path` with `key`, the body's bytes (e.g. a generated image by its `image_url`).
    pub async fn bytes_with_key(&self, key: &str, path: &str) -> Vec<u8> {
        self.client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    /// A URL on the metrics listener.
    pub fn metrics_url(&self, path: &str) -> String {
        let address = self
            .metrics_address
            .as_deref()
            .expect("the metrics listener is on (metrics.listen)");
        format!("{address}{path}")
    }

    /// The Prometheus text of `GET /metrics`, from the metrics listener.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.metrics_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Files in the blob store's content-addressed tree (images and manifest stores; not the
    /// transparency log's tiles under `log/`).
    pub fn blob_count(&self) -> usize {
        walk(&self.settings.storage.blobs_dir().join("sha256"))
    }
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                walk(&path)
            } else {
                1
            }
        })
        .sum()
}

/// Asserts the JSON error shape and returns the code.
pub async fn error_code(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.expect("error body is JSON");
    let code = body["code"].as_str().expect("error has a code").to_owned();
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error has a message: {body}"
    );
    code
}

/// A TCP relay in front of PostgreSQL that a test can cut (dropping every connection and
/// refusing new ones) and restore: the database "goes away" for one app only.
pub struct DbProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: Arc<Notify>,
}

impl DbProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(Notify::new());
        let (up2, cut2) = (Arc::clone(&up), Arc::clone(&cut));
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let cut = Arc::clone(&cut2);
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = cut.notified() => {}
                    }
                });
            }
        });
        Self { addr, up, cut }
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// CRC-32 (IEEE), as PNG chunks carry.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffff_u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The Python with c2pa-python that `scripts/setup.sh` installs (`HALLMARK_PYTHON`).
pub fn python() -> PathBuf {
    std::env::var_os("HALLMARK_PYTHON").map_or_else(
        || PathBuf::from("/root/.cache/hallmark/venv/bin/python"),
        PathBuf::from,
    )
}
