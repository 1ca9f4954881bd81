//! Stored verification checks: who asked, when, about which file, and the whole report.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// What the evidence adds up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Hallmark made it: our valid manifest, or a registry match.
    HallmarkGenerated,
    /// Another producer's valid manifest declares AI generation.
    AiGeneratedDeclared,
    /// No provenance says so, but the detector scores it above its threshold.
    LikelySynthetic,
    NoEvidence,
}

impl Verdict {
    pub const ALL: [Self; 4] = [
        Self::HallmarkGenerated,
        Self::AiGeneratedDeclared,
        Self::LikelySynthetic,
        Self::NoEvidence,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HallmarkGenerated => "hallmark_generated",
            Self::AiGeneratedDeclared => "ai_generated_declared",
            Self::LikelySynthetic => "likely_synthetic",
            Self::NoEvidence => "no_evidence",
        }
    }
}

impl std::str::FromStr for Verdict {
    type Err = UnknownVerdict;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|verdict| verdict.as_str() == name)
            .ok_or(UnknownVerdict)
    }
}

/// A verdict name that is none of [`Verdict::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a verdict is one of hallmark_generated, ai_generated_declared, likely_synthetic, no_evidence"
)]
pub struct UnknownVerdict;

/// Stored as its name in a `text` column.
impl sqlx::Type<sqlx::Postgres> for Verdict {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Verdict {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(<&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?.parse()?)
    }
}

/// A check to store.
#[derive(Debug, Clone)]
pub struct NewCheck<'a> {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub api_key_id: Option<Uuid>,
    pub file_sha256: &'a [u8],
    pub file_name: Option<&'a str>,
    pub verdict: Verdict,
    pub matched_record_id: Option<Uuid>,
    pub report: serde_json::Value,
}

/// One line of the history.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CheckSummary {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub file_name: Option<String>,
    /// SHA-256 of the uploaded file, hex.
    pub file_sha256: String,
    pub verdict: Verdict,
    /// A manifest was present but failed validation.
    pub tampered: bool,
    pub matched_record_id: Option<Uuid>,
    /// Name of the API key that asked.
    pub key_name: Option<String>,
}

/// A stored check with its full report, exactly as it was answered.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StoredCheck {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub key_name: Option<String>,
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
}

/// Where a page of the history starts: strictly older than this check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    /// Opaque to clients: `<microseconds since the epoch>.<id>`.
    #[must_use]
    pub fn encode(&self) -> String {
        format!(
            "{}.{}",
            self.created_at.timestamp_micros(),
            self.id.simple()
        )
    }

    #[must_use]
    pub fn decode(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('.')?;
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// Stores checks in one transaction.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn insert_all(pool: &PgPool, checks: &[NewCheck<'_>]) -> Result<(), sqlx::Error> {
    if checks.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for check in checks {
        sqlx::query(
            "INSERT INTO checks (id, created_at, api_key_id, file_sha256, file_name, verdict,
                matched_record_id, report)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(check.id)
        .bind(check.created_at)
        .bind(check.api_key_id)
        .bind(check.file_sha256)
        .bind(check.file_name)
        .bind(check.verdict.as_str())
        .bind(check.matched_record_id)
        .bind(&check.report)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Newest first, `limit` of them, older than `before`, optionally of one verdict.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn list(
    pool: &PgPool,
    limit: u32,
    before: Option<Cursor>,
    verdict: Option<Verdict>,
) -> Result<Vec<CheckSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.created_at, c.file_name, encode(c.file_sha256, 'hex') AS file_sha256,
                c.verdict, coalesce((c.report->>'tampered')::boolean, false) AS tampered,
                c.matched_record_id, k.name AS key_name
         FROM checks c LEFT JOIN api_keys k ON k.id = c.api_key_id
         WHERE ($1::timestamptz IS NULL OR (c.created_at, c.id) < ($1, $2))
           AND ($3::text IS NULL OR c.verdict = $3)
         ORDER BY c.created_at DESC, c.id DESC
         LIMIT $4",
    )
    .bind(before.map(|c| c.created_at))
    .bind(before.map(|c| c.id))
    .bind(verdict.map(Verdict::as_str))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
}

/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<StoredCheck>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.created_at, k.name AS key_name, c.report
         FROM checks c LEFT JOIN api_keys k ON k.id = c.api_key_id WHERE c.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_junk() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        for junk in [
            "",
            "abc",
            "12.",
            ".x",
            "1.not-a-uuid",
            "x.0190a0f0e0d0c0b0a090807060504030",
        ] {
            assert_eq!(Cursor::decode(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn a_verdict_is_stored_and_parsed_as_its_json_name() {
        for verdict in Verdict::ALL {
            assert_eq!(verdict.as_str().parse::<Verdict>(), Ok(verdict));
            assert_eq!(
                serde_json::to_value(verdict).unwrap(),
                serde_json::json!(verdict.as_str())
            );
        }
        assert_eq!("maybe".parse::<Verdict>(), Err(UnknownVerdict));
        assert_eq!("".parse::<Verdict>(), Err(UnknownVerdict));
    }
}
