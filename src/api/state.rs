//! What every handler can reach; built by `startup` (`src/startup.rs`), so that `startup` → `api`
//! is the only edge between them.

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use super::body::UploadBudget;
use super::limits::PublicLimiter;
use crate::config::Settings;
use crate::generation::GenerationService;
use crate::registry::index::HashIndex;
use crate::store::api_keys::KeyCache;
use crate::verify::VerifyService;

/// What every handler can reach.
pub struct AppState {
    pub pool: PgPool,
    /// Keys the database has passed, for the generation route (`api::auth::CachedKey`).
    pub keys: KeyCache,
    pub settings: Settings,
    pub generation: GenerationService,
    pub verify: VerifyService,
    /// The in-memory near-duplicate index (`verify.memory_index`).
    pub index: Option<HashIndex>,
    pub public_limiter: PublicLimiter,
    /// Memory for request bodies being read, all uploads together (`limits.upload_memory_bytes`).
    pub uploads: UploadBudget,
    pub metrics: PrometheusHandle,
    /// The transparency log (`src/tlog/`).
    pub log: std::sync::Arc<crate::tlog::Log>,
}
