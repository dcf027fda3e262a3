//! Skills calling skills: the platform side of `omniforge:skill/skills`.
//!
//! The runtime has checked the grant and computed the budget; here the call gets the rules of
//! the platform — no cycles (a skill already on the call stack, any version), at most
//! `skills.max_depth` invocations in a chain, the callee usable by the tenant as for a
//! direct call (its own or installed), a version matching both the manifest's and the call's
//! requirement — and then runs through [`Invocations::invoke`] like any other invocation,
//! with its own sandbox, capabilities, schemas and quota count. What went wrong becomes the
//! [`CallError`] the calling guest sees.

use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use omniforge_registry::{describe_permissions, parse_requirement};
use omniforge_runtime::Outcome;
use omniforge_runtime::capabilities::{CallAnswer, CallError, SkillCall, SkillCaller};
use omniforge_types::SkillName;
use semver::VersionReq;
use serde_json::value::RawValue;

use crate::catalog::ResolveError;
use crate::invocations::{Call, EntryPoint, Invocations, InvokeError, Nesting};

/// The runtime's [`SkillCaller`]: hands calls to the invocation service. The runtime is
/// built before the service that uses it, so the service is attached afterwards.
#[derive(Default)]
pub struct NestedCalls {
    service: OnceLock<Weak<Invocations>>,
}

impl NestedCalls {
    /// Sends calls to `service` from now on.
    pub fn attach(&self, service: &Arc<Invocations>) {
        let _ = self.service.set(Arc::downgrade(service));
    }
}

#[async_trait]
impl SkillCaller for NestedCalls {
    async fn call(&self, call: SkillCall) -> CallAnswer {
        match self.service.get().and_then(Weak::upgrade) {
            Some(service) => service.call_skill(call).await,
            None => CallAnswer::refused(CallError::Unavailable(
                "the server is starting or stopping".into(),
            )),
        }
    }
}

/// Both requirements at once: a version must match the manifest's and the call's.
fn both(granted: &VersionReq, requirement: &str) -> Result<String, String> {
    let asked = parse_requirement(requirement)
        .map_err(|e| format!("version requirement {requirement:?}: {e}"))?;
    let mut comparators = granted.comparators.clone();
    comparators.extend(asked.comparators);
    Ok(VersionReq { comparators }.to_string())
}

impl Invocations {
    /// Runs a call a skill made, under the platform's rules for nested calls.
    pub async fn call_skill(&self, call: SkillCall) -> CallAnswer {
        let denied = |why: String| CallAnswer::refused(CallError::Denied(why));
        let skill = call.skill;
        if call.callers.contains(&skill) {
            let stack: Vec<&str> = call.callers.iter().map(SkillName::as_str).collect();
            return denied(format!(
                "calling {skill} would be a cycle: {} → {skill}",
                stack.join(" → "),
            ));
        }
        let depth = call.callers.len() + 1;
        if depth > self.max_depth() as usize {
            return denied(format!(
                "calling {skill} would make the chain {depth} skills deep; skills.max_depth is {}",
                self.max_depth()
            ));
        }
        let requirement = match both(&call.granted, &call.requirement) {
            Ok(requirement) => requirement,
            Err(why) => return CallAnswer::refused(CallError::InvalidInput(why)),
        };
        let Ok(input) = RawValue::from_string(call.input) else {
            return CallAnswer::refused(CallError::InvalidInput(format!(
                "the input for {skill} is not JSON"
            )));
        };
        let name = skill.clone();
        let answer = Box::pin(self.invoke(Call {
            tenant: call.tenant,
            skill,
            requirement: Some(requirement),
            input,
            request_id: call.request_id,
            deadline: Some(call.deadline),
            entry: EntryPoint::Nested(Nesting {
                callers: call.callers,
                fuel: call.fuel,
            }),
            // Runs inside its caller's host call: cancelling the caller drops it.
            cancel: None,
            task: call.task,
        }))
        .await;
        match answer {
            Ok(invoked) => CallAnswer {
                result: Ok(invoked.output.get().to_owned()),
                fuel_consumed: invoked.usage.fuel_consumed,
                invocations: 1 + invoked.usage.skill_calls,
            },
            Err(error) => answer_of(&name, error),
        }
    }
}

/// What the calling guest sees of a callee's failure.
fn answer_of(name: &SkillName, error: InvokeError) -> CallAnswer {
    let (error, usage) = match error {
        InvokeError::InvalidInput(e) => (CallError::InvalidInput(e.message), None),
        InvokeError::Resolve(e) => (resolve_error(name, e), None),
        InvokeError::Quota(quota) => (CallError::Failed(format!("{name}: {quota}")), None),
        InvokeError::Ended { outcome, usage } => {
            let error = match outcome {
                Outcome::GuestError { kind, message } => CallError::Skill { kind, message },
                Outcome::ConcurrencyLimit { .. } | Outcome::MemoryBudget { .. } => {
                    CallError::Unavailable(format!("{name} could not start: {outcome}"))
                }
                outcome => {
                    CallError::Failed(format!("{name} ended with {}: {outcome}", outcome.code()))
                }
            };
            (error, Some(usage))
        }
        InvokeError::InvalidOutput { violation, usage } => (
            CallError::Failed(format!(
                "{name} ended with invalid_output: {}",
                violation.message
            )),
            Some(usage),
        ),
        InvokeError::Internal(cause) | InvokeError::Unavailable(cause) => (
            CallError::Unavailable(format!("{name} could not run: {cause}")),
            None,
        ),
    };
    CallAnswer {
        result: Err(error),
        fuel_consumed: usage.map_or(0, |u| u.fuel_consumed),
        invocations: usage.map_or(0, |u| 1 + u.skill_calls),
    }
}

fn resolve_error(name: &SkillName, error: ResolveError) -> CallError {
    match error {
        ResolveError::NotFound => {
            CallError::NotFound(format!("no skill {name} is visible to the tenant"))
        }
        ResolveError::NoMatch(why) => CallError::NotFound(format!("{name}: {why}")),
        ResolveError::BadRequirement(why) => CallError::InvalidInput(format!("{name}: {why}")),
        ResolveError::NotInstalled => CallError::Denied(format!(
            "{name} is another tenant's skill that this tenant has not installed"
        )),
        ResolveError::PermissionsNotAccepted(pending) => CallError::Denied(format!(
            "{name} {} asks for permissions the installation has not accepted: {}",
            pending.version,
            describe_permissions(&pending.new_permissions)
        )),
        ResolveError::Compiling { version } => CallError::Unavailable(format!(
            "{name} {version} is still being compiled; try again shortly"
        )),
        ResolveError::Internal(cause) => {
            CallError::Unavailable(format!("{name} could not be loaded: {cause}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_narrows_the_manifests_requirement() {
        let req = |text: &str| VersionReq::parse(text).unwrap();
        assert_eq!(both(&req("^1.2"), "").unwrap(), "^1.2");
        assert_eq!(both(&req("*"), "=1.3.0").unwrap(), "=1.3.0");
        assert_eq!(both(&req("^1.2"), "<1.5").unwrap(), "^1.2, <1.5");
        let narrowed = req(&both(&req("^1.2"), "<1.5").unwrap());
        assert!(narrowed.matches(&"1.4.0".parse().unwrap()));
        assert!(!narrowed.matches(&"1.5.0".parse().unwrap()));
        assert!(both(&req("^1"), "not a version").is_err());
    }
}
