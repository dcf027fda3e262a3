//! The HTTP API against the real server on port 0, over a fresh SQLite database and, when
//! `OMNIFORGE_TEST_DATABASE_URL` is set (`.ci/run` sets it; under `CI=true` it must be), a
//! fresh PostgreSQL database per test.

mod agents;
mod common;
mod escalation;
mod flows;
mod hardening;
mod limits;
mod lockout;
mod openapi;
mod routes;
mod sharing;
mod skills;
mod tokens;
