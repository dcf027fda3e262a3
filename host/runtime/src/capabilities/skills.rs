//! The `skills` capability (`omniforge:skill/skills`, since WIT 0.1.1): a skill calling another
//! skill through the host.
//!
//! The runtime checks the grant (the callee must be in the manifest's `[permissions]
//! skills`) and carries the budget: the callee may burn what the caller has left (less a
//! small reserve, so the caller can still answer when the callee used everything) and must
//! end by the caller's deadline; what it burned is taken from the caller's fuel. Everything
//! else — resolution, installation rules, cycles, depth, quotas — belongs to the platform
//! behind [`SkillCaller`] (the invocation service in a server).
//!
//! It is linked by hand rather than through the generated `Host` trait because it needs the
//! caller's store (its remaining fuel), which generated host traits do not see.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use semver::VersionReq;
use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

use crate::bindings::omniforge::skill::types::SkillError;
use crate::invocation::{InvocationContext, SkillName, TaskRun, TenantId};
use crate::outcome::{GuestErrorKind, Usage};
use crate::state::InvocationState;

/// The interface as the host exports it; components built against any 0.1.x import it
/// (the linker matches semver-compatibly).
const INTERFACE: &str = "omniforge:skill/skills@0.1.3";

/// One call of a skill by another, as the platform receives it.
#[derive(Debug, Clone)]
pub struct SkillCall {
    /// The tenant the caller runs for; the callee runs for it too.
    pub tenant: TenantId,
    /// The caller's request id, for the callee's logs.
    pub request_id: String,
    /// The skills on the call stack, outermost first, ending with the caller.
    pub callers: Vec<SkillName>,
    /// The callee: one the caller's manifest lists.
    pub skill: SkillName,
    /// The version requirement the caller's manifest grants for it.
    pub granted: VersionReq,
    /// The requirement the call adds, as the guest wrote it (empty: none).
    pub requirement: String,
    /// The input, as the guest wrote it.
    pub input: String,
    /// The most fuel the callee may burn (`None`: fuel is not metered).
    pub fuel: Option<u64>,
    /// When the callee must have ended: the caller's deadline.
    pub deadline: Instant,
    /// The durable task the caller runs for: the callee runs for it too (its context, its
    /// log lines as the task's events).
    pub task: Option<TaskRun>,
}

/// Why a call did not answer an output, as the calling guest sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Not granted, not usable by the tenant, a cycle or too deep.
    Denied(String),
    /// No such skill, or no version matching the requirements.
    NotFound(String),
    /// The callee refused the input before running.
    InvalidInput(String),
    /// The callee's own error, passed through unchanged.
    Skill {
        /// Its kind.
        kind: GuestErrorKind,
        /// Its message.
        message: String,
    },
    /// The callee cannot run now (still compiling, the platform failing); retrying may work.
    Unavailable(String),
    /// The callee ran out of a limit, timed out, trapped, broke its output schema, or a
    /// quota refused the call; the message names which.
    Failed(String),
}

/// What a call cost and answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAnswer {
    /// The callee's output (JSON text) or why there is none.
    pub result: Result<String, CallError>,
    /// Fuel the callee's whole tree burned (taken from the caller's).
    pub fuel_consumed: u64,
    /// Invocations the call ran: the callee and every call beneath it.
    pub invocations: u32,
}

impl CallAnswer {
    /// An answer for a call refused before anything ran.
    pub fn refused(error: CallError) -> Self {
        Self {
            result: Err(error),
            fuel_consumed: 0,
            invocations: 0,
        }
    }
}

/// The platform that runs the skills a skill calls.
#[async_trait]
pub trait SkillCaller: Send + Sync + 'static {
    /// Runs `call` to its end. The returned future is polled inside the caller's host call,
    /// on the caller's thread and under its CPU slot; the callee's [`Runtime::invoke`] runs
    /// under that slot, so it must be awaited here, not moved to a task of its own.
    ///
    /// [`Runtime::invoke`]: crate::Runtime::invoke
    async fn call(&self, call: SkillCall) -> CallAnswer;
}

/// Fuel a caller keeps back from a callee: a sixteenth of what it has left, at most this
/// much, so that a callee that burns all it may still leaves its caller enough to answer.
const MAX_FUEL_RESERVE: u64 = 10_000_000;

/// The fuel a callee may burn out of the caller's `remaining`.
fn callee_fuel(remaining: u64) -> u64 {
    remaining - (remaining / 16).min(MAX_FUEL_RESERVE)
}

/// One invocation's view of the capability.
pub(crate) struct SkillsState {
    caller: Option<Arc<dyn SkillCaller>>,
    granted: BTreeMap<SkillName, VersionReq>,
    context: Arc<InvocationContext>,
    callers: Vec<SkillName>,
    deadline: Instant,
    fuel_metered: bool,
    invocations: u32,
    task: Option<TaskRun>,
}

impl SkillsState {
    /// The call to make, or why it is refused here.
    fn call(
        &self,
        skill: String,
        requirement: String,
        input: String,
        fuel: Option<u64>,
    ) -> Result<(Arc<dyn SkillCaller>, SkillCall), CallError> {
        let not_granted = || {
            CallError::Denied(format!(
                "{skill} is not granted: add it to [permissions] skills in omniforge.toml"
            ))
        };
        let name: SkillName = skill.parse().map_err(|_| not_granted())?;
        let Some(granted) = self.granted.get(&name) else {
            return Err(not_granted());
        };
        let Some(caller) = &self.caller else {
            return Err(CallError::Denied(
                "this host does not run nested skills (use a server)".into(),
            ));
        };
        let mut callers = self.callers.clone();
        callers.push(self.context.skill.clone());
        Ok((
            Arc::clone(caller),
            SkillCall {
                tenant: self.context.tenant.clone(),
                request_id: self.context.request_id.clone(),
                callers,
                skill: name,
                granted: granted.clone(),
                requirement,
                input,
                fuel,
                deadline: self.deadline,
                task: self.task.clone(),
            },
        ))
    }
}

impl From<CallError> for SkillError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Denied(m) => Self::Denied(m),
            CallError::NotFound(m) => Self::NotFound(m),
            CallError::InvalidInput(m) => Self::InvalidInput(m),
            CallError::Unavailable(m) => Self::Unavailable(m),
            CallError::Failed(m) => Self::Failed(m),
            CallError::Skill { kind, message } => match kind {
                GuestErrorKind::InvalidInput => Self::InvalidInput(message),
                GuestErrorKind::Denied => Self::Denied(message),
                GuestErrorKind::NotFound => Self::NotFound(message),
                GuestErrorKind::Unavailable => Self::Unavailable(message),
                GuestErrorKind::Failed => Self::Failed(message),
            },
        }
    }
}

/// Runs one `invoke` of the guest: the grant, the call, and the fuel it cost.
async fn invoke(
    mut store: StoreContextMut<'_, InvocationState>,
    skill: String,
    requirement: String,
    input: String,
) -> Result<String, SkillError> {
    let remaining = if store.data().caps.skills.fuel_metered {
        Some(store.get_fuel().unwrap_or(0))
    } else {
        None
    };
    let (caller, call) =
        store
            .data()
            .caps
            .skills
            .call(skill, requirement, input, remaining.map(callee_fuel))?;
    let answer = caller.call(call).await;
    store.data_mut().caps.skills.invocations += answer.invocations;
    if let Some(remaining) = remaining {
        // Setting fuel cannot fail while metering is on; the callee's burn is the caller's.
        let _ = store.set_fuel(remaining.saturating_sub(answer.fuel_consumed));
    }
    answer.result.map_err(SkillError::from)
}

impl super::Capability for SkillsState {
    fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
        linker.instance(INTERFACE)?.func_wrap_async(
            "invoke",
            |store: StoreContextMut<'_, InvocationState>,
             (skill, requirement, input): (String, String, String)| {
                Box::new(async move { Ok((invoke(store, skill, requirement, input).await,)) })
            },
        )
    }

    fn new(setup: &super::Setup<'_>) -> Self {
        Self {
            caller: setup.invoker.skill_caller.clone(),
            granted: setup.grants.skills.clone(),
            context: Arc::clone(setup.context),
            callers: setup.callers.to_vec(),
            deadline: setup.deadline,
            fuel_metered: setup.invoker.config.fuel_metering,
            invocations: 0,
            task: setup.task.cloned(),
        }
    }

    fn report(&self, usage: &mut Usage) {
        usage.skill_calls = self.invocations;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_keeps_a_reserve_of_its_fuel() {
        assert_eq!(callee_fuel(0), 0);
        assert_eq!(callee_fuel(16), 15);
        assert_eq!(callee_fuel(1_600), 1_500);
        assert_eq!(callee_fuel(1_000_000_000), 1_000_000_000 - MAX_FUEL_RESERVE);
        assert_eq!(callee_fuel(u64::MAX), u64::MAX - MAX_FUEL_RESERVE);
    }
}
