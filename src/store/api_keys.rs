//! API keys: `hm_` followed by 64 hex digits (256 random bits). Only the SHA-256 of a key is
//! stored; the key itself is shown once, when it is created.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::fingerprint::sha256;

const KEY_PREFIX: &str = "hm_";
/// Characters of the key kept in clear for listings: the prefix and 8 hex digits.
const SHOWN_CHARS: usize = KEY_PREFIX.len() + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Generator,
    Moderator,
    Admin,
}

impl Role {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generator => "generator",
            Self::Moderator => "moderator",
            Self::Admin => "admin",
        }
    }

    /// Admin may do everything; the other roles only their own work.
    #[must_use]
    pub fn allows(self, needed: Role) -> bool {
        self == Self::Admin || self == needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "generator" => Ok(Self::Generator),
            "moderator" => Ok(Self::Moderator),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown role {other:?}: expected generator, moderator or admin"
            )),
        }
    }
}

/// A key as listed: never the key itself.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: RoleColumn,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKeyInfo {
    /// The key as the handlers see it: its id and role.
    #[must_use]
    pub fn caller(&self) -> Caller {
        Caller {
            key_id: self.id,
            role: self.role.0,
        }
    }
}

/// `role` as read from the database (checked by the table's CHECK constraint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RoleColumn(pub Role);

impl TryFrom<String> for RoleColumn {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse().map(RoleColumn)
    }
}

/// The key that authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub key_id: Uuid,
    pub role: Role,
}

/// A freshly made key, with the secret to hand to its owner once.
pub struct NewApiKey {
    pub info: ApiKeyInfo,
    pub secret: SecretString,
}

fn hash_key(key: &str) -> [u8; 32] {
    sha256(key.as_bytes())
}

/// Makes and stores a new key.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn create(pool: &PgPool, name: &str, role: Role) -> Result<NewApiKey, sqlx::Error> {
    let mut random = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let key = format!("{KEY_PREFIX}{}", hex::encode(random));
    let info: ApiKeyInfo = sqlx::query_as(
        "INSERT INTO api_keys (id, name, role, prefix, key_hash)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, name, role, prefix, created_at, revoked_at",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(role.as_str())
    .bind(&key[..SHOWN_CHARS])
    .bind(&hash_key(&key)[..])
    .fetch_one(pool)
    .await?;
    Ok(NewApiKey {
        info,
        secret: SecretString::from(key),
    })
}

/// Every key, newest first.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn list(pool: &PgPool) -> Result<Vec<ApiKeyInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, role, prefix, created_at, revoked_at FROM api_keys
         ORDER BY created_at DESC, id DESC",
    )
    .fetch_all(pool)
    .await
}

/// Revokes a key by id, or by its shown prefix when that names exactly one key. Returns whether a
/// live key was revoked.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn revoke(pool: &PgPool, id_or_prefix: &str) -> Result<bool, sqlx::Error> {
    let result = match Uuid::parse_str(id_or_prefix) {
        Ok(id) => {
            sqlx::query(
                "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(id)
            .execute(pool)
            .await?
        }
        Err(_) => {
            sqlx::query(
                "UPDATE api_keys SET revoked_at = now()
                 WHERE prefix = $1 AND revoked_at IS NULL
                   AND (SELECT count(*) FROM api_keys WHERE prefix = $1) = 1",
            )
            .bind(id_or_prefix)
            .execute(pool)
            .await?
        }
    };
    Ok(result.rows_affected() == 1)
}

/// Whether the key with this id exists and is not revoked.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn is_live(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL)",
    )
    .bind(id)
    .fetch_one(pool)
    .await
}

/// The live key matching a presented secret, if any.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn authenticate(
    pool: &PgPool,
    presented: &SecretString,
) -> Result<Option<ApiKeyInfo>, sqlx::Error> {
    match presented_hash(presented) {
        Some(hash) => live_by_hash(pool, &hash).await,
        None => Ok(None),
    }
}

/// The hash a presented secret is stored under; `None` for a secret that is not a key at all.
fn presented_hash(presented: &SecretString) -> Option<[u8; 32]> {
    let key = presented.expose_secret();
    key.starts_with(KEY_PREFIX).then(|| hash_key(key))
}

async fn live_by_hash(pool: &PgPool, hash: &[u8; 32]) -> Result<Option<ApiKeyInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, role, prefix, created_at, revoked_at FROM api_keys
         WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(&hash[..])
    .fetch_optional(pool)
    .await
}

/// Keys the database has passed, by the SHA-256 of the secret: lets the generation route skip
/// its key query. A hit is *not* proof that the key is live now; it is only used where the effect
/// re-checks the key in its own statement (the generation commit, `store::records::
/// insert_generated`, inserts nothing for a revoked key), so a revoked key is still refused on its
/// very next request. Unknown and revoked keys are never cached. Bounded: when it holds
/// [`KeyCache::CAPACITY`] keys it starts again empty (operators hold a handful of keys; a hash map
/// and a clear is all the policy that needs).
#[derive(Debug, Default)]
pub struct KeyCache {
    keys: std::sync::RwLock<std::collections::HashMap<[u8; 32], ApiKeyInfo>>,
}

impl KeyCache {
    pub const CAPACITY: usize = 4096;

    /// The key matching a presented secret, and whether it came from the cache: from the cache
    /// when the database passed it before (it may have been revoked since: see [`is_live`]),
    /// else from the database (`authenticate`), cached when live.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn authenticate(
        &self,
        pool: &PgPool,
        presented: &SecretString,
    ) -> Result<Option<(ApiKeyInfo, bool)>, sqlx::Error> {
        let Some(hash) = presented_hash(presented) else {
            return Ok(None);
        };
        if let Some(info) = self
            .keys
            .read()
            .ok()
            .and_then(|keys| keys.get(&hash).cloned())
        {
            return Ok(Some((info, true)));
        }
        let found = live_by_hash(pool, &hash).await?;
        if let (Some(info), Ok(mut keys)) = (&found, self.keys.write()) {
            if keys.len() >= Self::CAPACITY {
                keys.clear();
            }
            keys.insert(hash, info.clone());
        }
        Ok(found.map(|info| (info, false)))
    }

    /// Drops a key found revoked, so that its next request is refused before any work.
    pub fn forget(&self, key_id: Uuid) {
        if let Ok(mut keys) = self.keys.write() {
            keys.retain(|_, info| info.id != key_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_allows_everything_others_only_their_role() {
        for needed in [Role::Generator, Role::Moderator, Role::Admin] {
            assert!(Role::Admin.allows(needed));
        }
        assert!(Role::Generator.allows(Role::Generator));
        assert!(!Role::Generator.allows(Role::Moderator));
        assert!(!Role::Moderator.allows(Role::Generator));
        assert!(!Role::Moderator.allows(Role::Admin));
    }

    #[test]
    fn roles_parse_back() {
        for role in [Role::Generator, Role::Moderator, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
