use hallmark::config::Settings;
use hallmark::Application;
use sqlx::PgPool;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    #[allow(dead_code)]
    pub pool: PgPool,
    #[allow(dead_code)]
    pub data_dir: tempfile::TempDir,
}

/// Settings for a test: port 0, a throw-away data directory, logs silenced unless TEST_LOG is set.
pub fn test_settings(data_dir: &std::path::Path) -> Settings {
    let mut settings = Settings::load(None).expect("default settings");
    settings.server.port = 0;
    settings.server.workers = 2;
    settings.storage.data_dir = data_dir.to_path_buf();
    if std::env::var_os("TEST_LOG").is_some() {
        hallmark::telemetry::init(&settings.log);
    }
    settings
}

/// Starts the app on `pool` (a fresh, migrated database from `#[sqlx::test]`).
pub async fn spawn_app(pool: PgPool) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let settings = test_settings(data_dir.path());
    spawn_with(settings, pool, data_dir)
}

pub fn spawn_with(settings: Settings, pool: PgPool, data_dir: tempfile::TempDir) -> TestApp {
    let app = Application::build_with_pool(settings, pool.clone()).expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        pool,
        data_dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }
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
