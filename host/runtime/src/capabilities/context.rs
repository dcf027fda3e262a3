//! The `context` capability (`omniforge:skill/context`, WIT 0.1.2): which durable task an
//! invocation runs for and which attempt of it this is, so a skill can make its side effects
//! idempotent. Always granted: it tells a skill nothing its own tenant could not see.

use wasmtime::component::{HasData, Linker};

use crate::bindings::omniforge::skill::context;
use crate::capabilities::HasCapability;
use crate::state::InvocationState;

/// Per-invocation state of the `context` capability.
pub(crate) struct ContextState {
    task: Option<(String, u32)>,
}

impl super::Capability for ContextState {
    fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
        context::add_to_linker::<InvocationState, ContextCapability>(linker, |s| {
            GuestContext(HasCapability::<ContextState>::capability(s))
        })
    }

    fn new(setup: &super::Setup<'_>) -> Self {
        Self {
            task: setup
                .task
                .map(|task| (task.id.to_string(), task.attempt.max(1))),
        }
    }
}

/// Borrowed view of [`ContextState`] that implements the generated `context::Host`.
struct GuestContext<'a>(&'a mut ContextState);

struct ContextCapability;

impl HasData for ContextCapability {
    type Data<'a> = GuestContext<'a>;
}

impl context::Host for GuestContext<'_> {
    fn task_id(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.0.task.as_ref().map(|(id, _)| id.clone()))
    }

    fn attempt(&mut self) -> wasmtime::Result<u32> {
        Ok(self.0.task.as_ref().map_or(1, |(_, attempt)| *attempt))
    }
}
