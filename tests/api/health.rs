use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use hallmark::store;
use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::{
    error_code, models_dir, spawn_app, spawn_app_with, spawn_with, test_settings,
};

#[sqlx::test]
async fn healthz_answers_ok(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[sqlx::test]
async fn readyz_is_ready_with_a_database(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    // The shipped thread settings (auto), resolved for this machine, as torch reports them on
    // the model thread.
    let auto = hallmark::inference::threads::TorchThreads::resolve(
        &app.settings.model,
        hallmark::inference::threads::available_cores(),
        false,
    );
    assert_eq!(body["model"]["name"], app.settings.model.name);
    assert_eq!(body["model"]["intra_op_threads"], auto.intra_op, "{body}");
    assert!(
        body["model"]["inter_op_threads"].as_u64() >= Some(1),
        "{body}"
    );
}

#[sqlx::test]
async fn the_configured_torch_threads_are_applied_on_the_model_thread(pool: PgPool) {
    let app = spawn_app_with(pool, |s| s.model.intra_op_threads = 3).await;
    let body = app.get_json("/readyz").await;
    assert_eq!(body["model"]["intra_op_threads"], 3, "{body}");
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_unreachable() {
    // Port 1 on loopback: nothing listens there, so connections are refused at once.
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(data_dir.path());
    settings.database.url = "postgres://postgres@127.0.0.1:1/hallmark".to_owned().into();
    settings.database.acquire_timeout_s = 1;
    let pool = store::lazy_pool(&settings.database).unwrap();
    let app = spawn_with(settings, pool, data_dir);

    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(error_code(response).await, "database_unavailable");

    // The process is still up and answering.
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[sqlx::test]
async fn unknown_routes_get_the_json_error_shape(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(response).await, "route_not_found");
}

#[sqlx::test]
async fn migrations_apply_twice_without_harm(pool: PgPool) {
    // #[sqlx::test] already applied them once.
    store::migrate(&pool).await.expect("second run is a no-op");
    store::migrate(&pool).await.expect("third run is a no-op");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "api_keys",
            "blob_journal",
            "checks",
            "log_checkpoints",
            "log_entries",
            "log_hashes",
            "log_pending",
            "record_hashes",
            "record_iscc",
            "records",
            "signing_keys"
        ]
    );
}

/// The binary serves, keeps serving after its log reader has gone (writes to a closed pipe), then
/// on SIGTERM drains and exits cleanly.
#[sqlx::test]
async fn serve_stops_gracefully_on_sigterm(pool: PgPool) {
    let options = pool.connect_options();
    let database = options.get_database().expect("test database name");
    let url = format!("postgres://postgres@127.0.0.1:5432/{database}");
    let data_dir = tempfile::tempdir().unwrap();
    let hallmark = |command: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hallmark"));
        cmd.arg(command)
            .env("HALLMARK__SERVER__PORT", "0")
            .env("HALLMARK__METRICS__LISTEN", "127.0.0.1:0")
            .env("HALLMARK__DATABASE__URL", &url)
            .env("HALLMARK__STORAGE__DATA_DIR", data_dir.path())
            .env("HALLMARK__MODEL__DIR", models_dir())
            .env("HALLMARK__MODEL__DEVICE", "cpu");
        cmd
    };
    let init = hallmark("init").output().unwrap();
    assert!(
        init.status.success(),
        "init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    // The configured torch thread count is applied on the model thread, whatever
    // OMP_NUM_THREADS says, and logged.
    let mut child = hallmark("serve")
        .env("HALLMARK__LOG__FORMAT", "json")
        .env("HALLMARK__MODEL__INTRA_OP_THREADS", "2")
        .env("OMP_NUM_THREADS", "3")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hallmark starts");
    let logs = child.stderr.take().unwrap();
    let port = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(logs).lines();
        let mut port = None;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if event["message"] == "model loaded" {
                assert_eq!(event["intra_op_threads"], 2, "{line}");
                assert_eq!(event["inter_op_threads"], 1, "{line}");
            }
            if event["message"] == "hallmark listening" {
                port = event["port"].as_u64();
                break;
            }
        }
        // The log reader goes away (as a closed log pipe does): the service's later log lines
        // (requests, shutdown) fail to write, and it must carry on regardless.
        drop(lines);
        port
    });
    let port = tokio::time::timeout(Duration::from_secs(120), port)
        .await
        .expect("service starts in time")
        .unwrap()
        .expect("service logs its port");

    for path in ["/healthz", "/readyz", "/no-such-route"] {
        let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .unwrap();
        assert_ne!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["model"]["intra_op_threads"], 2, "{ready}");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[sqlx::test]
async fn openapi_document_docs_page_and_metrics_are_served(pool: PgPool) {
    let app = spawn_app(pool).await;
    let spec: serde_json::Value = app.get_json("/openapi.json").await;
    for path in [
        "/v1/generations",
        "/v1/images/{id}",
        "/v1/records/{id}",
        "/v1/records",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} is documented");
    }
    assert!(spec["components"]["securitySchemes"]["api_key"].is_object());
    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("/openapi.json"));

    app.client.get(app.url("/healthz")).send().await.unwrap();
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"hallmark_http_requests_total{method="GET",route="/healthz",status="200"}"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("hallmark_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("hallmark_queue_depth"));
}

#[tokio::test]
async fn the_app_refuses_to_start_without_its_model() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(data_dir.path());
    settings.model.name = "no-such-model".into();
    let pool = store::lazy_pool(&settings.database).unwrap();
    let error = hallmark::Application::build_with_pool(settings, pool)
        .err()
        .expect("start-up fails");
    let message = format!("{error:#}");
    assert!(
        message.contains("no-such-model") && message.contains("fashion-dcgan32"),
        "{message}"
    );
}

/// `sslmode=require` in `database.url` gets a TLS connection (sqlx with rustls), as managed
/// PostgreSQL services demand; a server without TLS refuses it rather than talking in clear.
#[tokio::test]
async fn the_database_connection_uses_tls_when_the_url_requires_it() {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/hallmark".into());
    let mut settings = hallmark::config::Settings::load(None).unwrap().database;
    settings.url = base.clone().into();
    let plain = store::lazy_pool(&settings).unwrap();
    let server_has_tls: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&plain)
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    settings.url = format!("{base}{separator}sslmode=require").into();
    let tls = store::lazy_pool(&settings).unwrap();
    let over_tls =
        sqlx::query_scalar::<_, bool>("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&tls)
            .await;
    if server_has_tls == "on" {
        assert!(over_tls.unwrap(), "the connection is not encrypted");
    } else {
        assert!(over_tls.is_err(), "sslmode=require connected without TLS");
    }
}
