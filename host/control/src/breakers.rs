//! Circuit breakers of workflow steps, one per (tenant, skill): a skill that keeps failing
//! for a tenant's runs is failed fast for a while instead of being called, then probed.
//!
//! The state machine is `omniforge_workflow::reliability::Breaker`; this module only keeps
//! one per pair, in this process. Each replica learns on its own (a breaker is an
//! optimisation, not a limit): sharing them through Redis belongs with step 12's shared
//! state.

use std::collections::HashMap;
use std::sync::Mutex;

use omniforge_store::TenantId;
use omniforge_types::SkillName;
use omniforge_workflow::reliability::{
    Admission, Breaker, BreakerPolicy, BreakerState, Transition,
};
use serde::Serialize;

/// The breakers of this process.
pub struct Breakers {
    policy: BreakerPolicy,
    breakers: Mutex<HashMap<(TenantId, SkillName), Breaker>>,
}

/// One breaker as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerStatus {
    /// The skill it guards.
    pub skill: SkillName,
    /// Its state now.
    pub state: BreakerState,
    /// Calls in its window.
    pub calls: u32,
    /// Failed calls in its window.
    pub failures: u32,
}

impl Breakers {
    /// Breakers that follow `policy`.
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            breakers: Mutex::default(),
        }
    }

    /// The policy they follow.
    pub fn policy(&self) -> BreakerPolicy {
        self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TenantId, SkillName), Breaker>> {
        self.breakers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call of `skill` for `tenant` may go ahead at `now_ms`.
    pub fn admit(&self, tenant: &TenantId, skill: &SkillName, now_ms: u64) -> Admission {
        match self.lock().get_mut(&(tenant.clone(), skill.clone())) {
            Some(breaker) => breaker.admit(now_ms),
            None => Admission::Allowed,
        }
    }

    /// Records how an admitted call ended.
    pub fn record(
        &self,
        tenant: &TenantId,
        skill: &SkillName,
        now_ms: u64,
        failed: bool,
    ) -> Option<Transition> {
        let mut breakers = self.lock();
        let key = (tenant.clone(), skill.clone());
        if !failed && !breakers.contains_key(&key) {
            // A success on a skill that never failed needs no breaker.
            return None;
        }
        breakers
            .entry(key)
            .or_insert_with(|| Breaker::new(self.policy))
            .record(now_ms, failed)
    }

    /// The tenant's breakers, by skill.
    pub fn of_tenant(&self, tenant: &TenantId, now_ms: u64) -> Vec<BreakerStatus> {
        let mut listed: Vec<BreakerStatus> = self
            .lock()
            .iter_mut()
            .filter(|((owner, _), _)| owner == tenant)
            .map(|((_, skill), breaker)| {
                let (failures, calls) = breaker.counts(now_ms);
                BreakerStatus {
                    skill: skill.clone(),
                    state: breaker.state(now_ms),
                    calls,
                    failures,
                }
            })
            .collect();
        listed.sort_by(|a, b| a.skill.as_str().cmp(b.skill.as_str()));
        listed
    }
}
