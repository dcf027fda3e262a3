//! Host capabilities a skill may import. Each is one module whose per-invocation state
//! implements `Capability`: how it links, how its state is built from what the invocation
//! was granted, and the usage it reports. `state.rs` lists them once (`capabilities!`), which
//! makes them fields of the store's data and runs the trait for each. A capability the
//! invocation was not granted still links (so one linker serves every skill) but answers
//! `denied`; it never aborts the guest. docs/architecture.md says how to add one.

pub(crate) mod context;
pub mod http;
pub mod kv;
pub mod log;
mod outbound;
pub mod secrets;
pub mod skills;

pub use http::{HostPattern, HttpLimits, HttpPolicy, InvalidHostPattern};
pub use kv::{KvLimits, KvScope, KvStore, KvStoreError, MemoryKvStore};
pub use log::LogLimits;
pub use secrets::{SecretSource, SecretSourceError, SecretValue};

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::Linker;

use crate::invocation::{Grants, InvocationContext, SkillName, TaskRun};
use crate::invoke::Invoker;
use crate::outcome::Usage;
use crate::state::InvocationState;

/// What one invocation's capability states are built from.
pub(crate) struct Setup<'a> {
    /// The runtime's configuration and the services capabilities use (kv store, secret
    /// source, log rate, skill caller).
    pub(crate) invoker: &'a Invoker,
    /// Who and what runs.
    pub(crate) context: &'a Arc<InvocationContext>,
    /// What the invocation was granted.
    pub(crate) grants: &'a Grants,
    /// The skills on the call stack above it.
    pub(crate) callers: &'a [SkillName],
    /// The durable task it runs for.
    pub(crate) task: Option<&'a TaskRun>,
    /// When it must have ended.
    pub(crate) deadline: Instant,
    /// The secret values it is handed, masked in what the host keeps of its words.
    pub(crate) redactions: &'a secrets::Redactions,
}

/// One host capability's per-invocation state.
pub(crate) trait Capability: Send + Sized + 'static {
    /// Adds the capability's interface to the linker; `InvocationState` reaches this state
    /// through [`HasCapability`].
    fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()>;

    /// The state of one invocation, granting what `setup.grants` says.
    fn new(setup: &Setup<'_>) -> Self;

    /// Adds what the invocation used of it to `usage`.
    fn report(&self, _usage: &mut Usage) {}
}

/// Access to capability `C`'s state in the store's data (implemented by `capabilities!`).
pub(crate) trait HasCapability<C> {
    /// The state.
    fn capability(&mut self) -> &mut C;
}
pub use skills::{CallAnswer, CallError, SkillCall, SkillCaller};
