//! Builds the running service: the bound listener, the shared state and the routes.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use sqlx::PgPool;
use tracing_actix_web::TracingLogger;

use crate::api::body::{BodyTimeout, UploadBudget};
use crate::api::{self, limits::PublicLimiter, AppState};
use crate::config::Settings;
use crate::generation::GenerationService;
use crate::registry::index::HashIndex;
use crate::registry::Registry;
use crate::store;
use crate::tlog::Log;
use crate::verify::VerifyService;

/// A service bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: Server,
    pool: PgPool,
    blobs: store::blobs::Blobs,
}

impl Application {
    /// Loads the model, the signing identity and the transparency log's key, binds the listener
    /// and builds the server with a lazily connecting database pool (so `/readyz` can report a
    /// database that is down); starts the log's sequencer in the background.
    ///
    /// # Errors
    /// When the model, the signing key or the transparency log key cannot be loaded, the address
    /// cannot be bound or the database URL is malformed; each message says which.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = store::lazy_pool(&settings.database)?;
        Self::build_with_pool(settings, pool)
    }

    /// As [`Application::build`], on a pool the caller made (tests use a fresh database).
    ///
    /// # Errors
    /// As [`Application::build`].
    pub fn build_with_pool(settings: Settings, pool: PgPool) -> anyhow::Result<Self> {
        let mut generation = GenerationService::from_settings(&settings, pool.clone())?;
        let index = settings.verify.memory_index.then(|| {
            let index = HashIndex::new();
            // Ends when the pool is closed; until the first load completes, searches go to
            // PostgreSQL.
            index.spawn_sync(pool.clone());
            index
        });
        generation.index.clone_from(&index);
        let verify = VerifyService::from_settings(
            &settings,
            Some(Registry {
                pool: pool.clone(),
                blobs: generation.blobs.clone(),
                index: index.clone(),
            }),
            Some(generation.inference.clone()),
        )
        .context("cannot load the trust anchors for verification")?;
        verify.trust().spawn_refreshers();
        let listener = TcpListener::bind(settings.server.address())
            .with_context(|| format!("cannot listen on {}", settings.server.address()))?;
        let port = listener.local_addr()?.port();
        let workers = settings.server.workers;
        let shutdown_timeout = settings.server.shutdown_timeout_s;
        let max_body = settings.limits.max_request_bytes;
        let body_timeout = BodyTimeout(Duration::from_secs(settings.limits.body_timeout_s));
        let max_connections = settings.server.max_connections;
        let public_limiter = PublicLimiter::new(&settings.api)?;
        public_limiter.spawn_forgetting();
        let log = std::sync::Arc::new(
            Log::from_settings(&settings, pool.clone(), generation.blobs.clone())
                .context("cannot open the transparency log")?,
        );
        // Integrates every transparency_log.checkpoint_interval_ms; ends with the pool.
        std::sync::Arc::clone(&log).spawn();
        let (app_pool, blobs) = (pool.clone(), generation.blobs.clone());
        let state = web::Data::new(AppState {
            pool,
            public_limiter,
            uploads: UploadBudget::new(settings.limits.upload_memory_bytes),
            settings,
            generation,
            verify,
            index,
            metrics: api::metrics::handle(),
            log,
        });

        let c2pa_prefix = state
            .settings
            .c2pa_api
            .prefix
            .trim_end_matches('/')
            .to_owned();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(api::body::deadline))
                .wrap(from_fn(api::metrics::track))
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .app_data(body_timeout)
                .app_data(api::json_config(max_body))
                .app_data(web::PayloadConfig::new(max_body))
                .configure(|cfg| api::routes(cfg, &c2pa_prefix))
                .default_service(web::to(api::not_found))
        })
        .shutdown_timeout(shutdown_timeout)
        // Headers must arrive within 30 s (slowloris); idle keep-alive connections close after 15 s.
        .client_request_timeout(Duration::from_secs(30))
        .keep_alive(Duration::from_secs(15))
        .client_disconnect_timeout(Duration::from_secs(5))
        .max_connections(max_connections)
        .listen(listener)?;
        if workers > 0 {
            server = server.workers(workers);
        }
        Ok(Self {
            port,
            server: server.run(),
            pool: app_pool,
            blobs,
        })
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Removes blobs an earlier crash left without a record (older than an hour), on the
    /// service's own blob store, in the background; replicas may do the same at once.
    pub fn collect_garbage_in_background(&self) {
        let (pool, blobs) = (self.pool.clone(), self.blobs.clone());
        tokio::spawn(async move {
            let grace = Duration::from_secs(3600);
            match store::blobs::collect_garbage(&pool, &blobs, grace).await {
                Ok(report) => tracing::info!(?report, "blob garbage collection"),
                Err(error) => tracing::warn!(error = %error, "blob garbage collection failed"),
            }
        });
    }

    /// Serves until SIGINT/SIGTERM, then drains in-flight requests (actix handles the signals).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
