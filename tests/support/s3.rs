//! A real S3-compatible server for tests, in its own process: moto's (`python -m moto.server`,
//! from the venv `scripts/setup.sh` makes; `HALLMARK_PYTHON` names its python) on a free port of
//! the loopback, with a bucket made through the S3 API (`CreateBucket`, path style). Killed when
//! dropped. Used by `tests/replicas.rs` (`#[path = "support/s3.rs"] mod s3;`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for the server to answer after its start: a guard against a hang.
const START_LIMIT: Duration = Duration::from_secs(60);

/// moto accepts any credentials; these only have to be present and alike everywhere.
pub const ACCESS_KEY_ID: &str = "hallmark-test";
pub const SECRET_ACCESS_KEY: &str = "hallmark-test-secret";
pub const REGION: &str = "us-east-1";

/// The python of the project venv (`HALLMARK_PYTHON`, as `make test` sets it).
pub fn python() -> PathBuf {
    std::env::var_os("HALLMARK_PYTHON").map_or_else(
        || PathBuf::from("/root/.cache/hallmark/venv/bin/python"),
        PathBuf::from,
    )
}

/// A running moto server with one bucket.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    pub bucket: String,
    log: PathBuf,
}

impl S3Server {
    /// Starts the server (its log in `dir`) and creates `bucket`.
    pub async fn start(dir: &Path, bucket: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("moto.log");
        let out = File::create(&log).unwrap();
        let python = python();
        let child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): set HALLMARK_PYTHON or run scripts/setup.sh",
                    python.display()
                )
            });
        let mut server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_owned(),
            log,
        };
        server.create_bucket().await;
        server
    }

    /// `PUT /<bucket>` (CreateBucket), retried until the server listens.
    async fn create_bucket(&mut self) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let url = format!("{}/{}", self.endpoint, self.bucket);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the S3 server exited at its start: {status} (is moto[server] installed? \
                     scripts/setup.sh){}",
                    self.log_tail()
                );
            }
            match client.put(&url).send().await {
                Ok(response) if response.status().is_success() => return,
                Ok(response) => panic!(
                    "CreateBucket {url}: {} {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                ),
                Err(_) => {
                    assert!(
                        started.elapsed() < START_LIMIT,
                        "the S3 server did not answer within {START_LIMIT:?}{}",
                        self.log_tail()
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// The `HALLMARK__STORAGE__...` settings of a blob store in this bucket.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("HALLMARK__STORAGE__BLOB_BACKEND", "s3".into()),
            ("HALLMARK__STORAGE__S3__BUCKET", self.bucket.clone()),
            ("HALLMARK__STORAGE__S3__REGION", REGION.into()),
            ("HALLMARK__STORAGE__S3__ENDPOINT", self.endpoint.clone()),
            ("HALLMARK__STORAGE__S3__ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            (
                "HALLMARK__STORAGE__S3__SECRET_ACCESS_KEY",
                SECRET_ACCESS_KEY.into(),
            ),
            ("HALLMARK__STORAGE__S3__ALLOW_HTTP", "true".into()),
        ]
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(3000);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        format!("\n--- S3 server log (end) ---\n{}", &log[start..])
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
