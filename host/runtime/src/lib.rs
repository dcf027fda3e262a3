//! # omniforge-runtime
//!
//! Runs untrusted OmniForge skills — WebAssembly components exporting
//! `omniforge:skill/handler` — each invocation in a fresh sandbox with hard limits. No HTTP
//! server, no database: the server, the CLI and the benchmarks all build on this crate.
//!
//! ```no_run
//! use omniforge_runtime::{
//!     Grants, InvocationContext, InvocationLimits, InvocationRequest, Runtime, RuntimeConfig,
//!     TenantId,
//! };
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let skill = runtime.load_file("hello.wasm").await?;
//! let report = runtime
//!     .invoke(
//!         &skill,
//!         InvocationRequest {
//!             context: InvocationContext {
//!                 tenant: TenantId::new("acme"),
//!                 skill: "examples/hello".parse().unwrap(),
//!                 version: "0.1.0".into(),
//!                 request_id: "req-1".into(),
//!                 trace_parent: None,
//!             },
//!             input: r#"{"name": "Ada"}"#.into(),
//!             limits: InvocationLimits::default(),
//!             grants: Grants::default(),
//!             callers: Vec::new(),
//!             cancel: None,
//!             task: None,
//!         },
//!     )
//!     .await;
//! assert_eq!(report.outcome.output(), Some(r#"{"greeting":"Hello, Ada!"}"#));
//! println!("used {} fuel", report.usage.fuel_consumed);
//! # Ok(()) }
//! ```
//!
//! What the runtime guarantees:
//! - one [`wasmtime::Engine`] per [`Runtime`]; a fresh `Store` and instance per invocation
//!   from a cached `InstancePre`, so nothing in guest memory survives an invocation;
//! - limits on fuel, total memory, wall time (including time blocked in host calls), output
//!   size, table elements, instances and per-tenant concurrency ([`InvocationLimits`]);
//! - WASI that grants nothing, and capabilities (`log`, `kv`, outbound HTTP) only as the
//!   request's [`Grants`] allow;
//! - compiled artifacts cached in memory and on disk, so a restart deserializes instead of
//!   recompiling; compilation behind the [`Compiler`] seam.

mod bindings;
mod cache;
pub mod capabilities;
mod compile;
mod concurrency;
mod config;
mod cpu;
mod engine;
mod error;
mod guests;
mod invocation;
mod invoke;
mod limits;
mod outcome;
mod runtime;
mod state;

pub use compile::{Compiler, InProcessCompiler};
pub use config::{
    AllocatorConfig, DeadlineEnforcement, PoolConfig, RuntimeConfig, default_cpu_slots,
    default_memory_budget,
};
/// A component's SHA-256, its identity in the caches: the same type as the registry's
/// digests (`omniforge_types::Sha256Digest`), so no conversion sits between them.
pub type ComponentDigest = omniforge_types::Sha256Digest;
pub use error::{LoadError, RuntimeError};
pub use invocation::{
    Grants, GuestLogLine, InvocationContext, InvocationRequest, LogSink, SkillName, TaskRun,
    TenantId,
};
pub use limits::InvocationLimits;
pub use outcome::{GuestErrorKind, InvocationReport, Outcome, Usage};
pub use runtime::{CacheStats, LoadedSkill, Runtime, RuntimeBuilder};
pub use wasmtime::Engine;
