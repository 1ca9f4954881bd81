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
    /// The operators' listener for `GET /metrics` (`metrics.listen`), with its port.
    metrics: Option<(u16, Server)>,
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
        api::cors::validate_origins(&settings.api.cors_origins)?;
        let listener = TcpListener::bind(settings.server.address())
            .with_context(|| format!("cannot listen on {}", settings.server.address()))?;
        let metrics_listener = match settings.metrics.listen.trim() {
            "" => None,
            address => Some(TcpListener::bind(address).with_context(|| {
                format!("cannot listen on {address} for GET /metrics (metrics.listen)")
            })?),
        };
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
            keys: crate::store::api_keys::KeyCache::default(),
            public_limiter,
            uploads: UploadBudget::new(settings.limits.upload_memory_bytes),
            settings,
            generation,
            verify,
            index,
            metrics: api::metrics::handle(),
            log,
        });

        let metrics = match metrics_listener {
            Some(listener) => Some(metrics_server(listener, state.clone())?),
            None => None,
        };
        let routing = api::Routing::from_settings(&state.settings);
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(api::body::deadline))
                .wrap(from_fn(api::metrics::track))
                .wrap(from_fn(api::cors::coded_refusals))
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .app_data(body_timeout)
                .app_data(api::json_config(max_body))
                .app_data(web::PayloadConfig::new(max_body))
                .configure(|cfg| api::routes(cfg, &routing))
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
            metrics,
            pool: app_pool,
            blobs,
        })
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the metrics listener (`metrics.listen`); `None` when it is off.
    #[must_use]
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
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
        let Some((_, metrics)) = self.metrics else {
            return self.server.await;
        };
        let metrics_handle = metrics.handle();
        let metrics = tokio::spawn(metrics);
        let served = self.server.await;
        // The public server has drained; the metrics listener goes with it.
        metrics_handle.stop(true).await;
        let _ = metrics.await;
        served
    }
}

/// `GET /metrics` (and HEAD) on the operators' own listener: one worker, the service's state, no
/// signal handling of its own (it stops when the public server has drained).
fn metrics_server(
    listener: TcpListener,
    state: web::Data<AppState>,
) -> anyhow::Result<(u16, Server)> {
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(TracingLogger::default())
            .app_data(state.clone())
            .configure(api::metrics_routes)
            .default_service(web::to(api::not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .client_request_timeout(Duration::from_secs(30))
    .keep_alive(Duration::from_secs(15))
    .listen(listener)?
    .run();
    Ok((port, server))
}
