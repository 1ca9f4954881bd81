//! HTTP integration tests: the real app on port 0 against a fresh PostgreSQL database per test
//! (`#[sqlx::test]` creates it next to `DATABASE_URL`, applies migrations and drops it after).

mod abuse;
mod authz;
mod cli;
mod cross_origin;
mod enhancements;
mod generations;
mod group_commit;
mod health;
mod helpers;
mod registry;
mod softbinding;
mod verify;

#[path = "../fixtures/mod.rs"]
mod fixtures;
