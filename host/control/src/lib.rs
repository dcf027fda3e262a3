//! The OmniForge invocation service: everything between "this tenant wants to run this
//! skill with this input" and "here is its output, and this is what it used", whichever
//! transport asked.
//!
//! [`Invocations`] owns the pipeline (resolution, installation and permission rules, input
//! and output schemas, limits, grants, quotas, settlement); the server's handlers parse a
//! request, call it and map its [`InvokeError`] to a problem. State that several replicas
//! will share sits behind small traits with in-process implementations: quota counters
//! ([`QuotaLedger`]: [`meter::Meter`] in one process, [`shared::ledger::RedisLedger`] across
//! replicas) and cache invalidation ([`ChangeFeed`]: [`changes::LocalChanges`] or
//! [`shared::changes::RedisChanges`]). Package and component bytes live in a [`blobs`] store
//! the replicas share when there are several.
//!
//! [`agents`] are saved here: their workflows checked, their skills resolved and pinned.
//!
//! Durable [`tasks`] run through the same pipeline, claimed from the database by workers in
//! every process.
//!
//! Skills calling skills (`omniforge:skill/skills`) re-enter the same pipeline through
//! [`nested::NestedCalls`], the runtime's `SkillCaller`, sharing the caller's budget.
//!
//! The other modules are the service's parts, also used directly by the registry's routes:
//! the [`catalog`] of skills as tenants see them, [`compiles`] of published components,
//! [`packages`] validation, tenant [`policy`], the database-backed [`kv`] capability, tenant
//! [`secrets`] and their providers, and the
//! one manifest → [`limits`] and grants mapping that `omniforge run` and `skill test` use
//! too. [`metrics`] holds the process's Prometheus families and the one place each is
//! counted; [`trace`] the trace context an invocation hands to its skill's outbound calls.

pub mod agents;
pub mod blobs;
pub mod breakers;
pub mod catalog;
pub mod changes;
pub mod compiles;
pub mod input;
pub mod integers;
pub mod invocations;
pub mod kv;
pub mod limits;
pub mod meter;
pub mod metrics;
pub mod nested;
pub mod packages;
pub mod policy;
pub mod secrets;
pub mod shared;
pub mod tasks;
pub mod trace;

pub use changes::{Change, ChangeFeed};
pub use invocations::{Call, EntryPoint, Invocations, InvokeError, Invoked};
pub use limits::PlatformLimits;
pub use meter::QuotaLedger;
pub use tasks::{TaskProblems, TaskSettings, Tasks};
