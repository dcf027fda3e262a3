//! Storage tests against real databases: a fresh SQLite file and, when
//! `OMNIFORGE_TEST_DATABASE_URL` is set (`.ci/run` sets it), a fresh PostgreSQL database per
//! test. Under `CI=true` a missing PostgreSQL fails the run instead of skipping.

mod agents;
mod common;
mod journal;
mod kv;
mod migrations;
mod repositories;
mod secrets;
mod tasks;
