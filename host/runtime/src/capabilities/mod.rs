//! Host capabilities a skill may import. Each has the same shape: its per-invocation state,
//! a borrowed view of that state implementing the generated `Host` trait, and an
//! `add_to_linker` function. A capability the invocation was not granted still links (so
//! one linker serves every skill) but answers `denied`; it never aborts the guest.

pub mod http;
pub mod kv;
pub mod log;
mod outbound;
pub mod skills;

pub use http::{HostPattern, HttpLimits, HttpPolicy, InvalidHostPattern};
pub use kv::{KvLimits, KvScope, KvStore, KvStoreError, MemoryKvStore};
pub use log::LogLimits;
pub use skills::{CallAnswer, CallError, SkillCall, SkillCaller};
