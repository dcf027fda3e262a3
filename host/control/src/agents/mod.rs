//! Agents: saving a definition (checked, its skills resolved and pinned, cycles among agent
//! steps refused), relocking, deleting. Runs are durable tasks.
//!
//! A save resolves every `skill` step as an invocation by the tenant would (its own skill or
//! an installed one, the version its requirement and installation allow) and writes the
//! result as the version's lockfile: runs of that version use exactly those versions and
//! digests. `relock` resolves again and saves the result as a new version.

mod spec;

pub use spec::{AdvertisedSkill, AgentSpec, CardSpec, SkillTarget};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use omniforge_store::{
    Agent, AgentId, AuditContext, Database, NewAgent, NewPin, Saved, StoreError, TenantId,
};
use omniforge_workflow::{Plan, Problem};

use crate::catalog::{self, Catalog, ResolveError};

/// Why a save did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The definition is wrong: each problem names its field (and step).
    #[error("the agent definition has {} problem(s)", .0.len())]
    Invalid(Vec<Problem>),
    /// Another agent has the name.
    #[error("{0}")]
    Conflict(String),
    /// No such agent.
    #[error("no such agent")]
    NotFound,
    /// The agent was saved since the version the caller read: this is its version now.
    #[error("the agent is at version {0}")]
    Stale(i64),
    /// The change did not say which version it is based on.
    #[error("the change names no version it is based on")]
    VersionRequired,
    /// The database or the catalog failed.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for SaveError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(message) => SaveError::Conflict(message),
            other => SaveError::Internal(other.to_string()),
        }
    }
}

/// Saving and relocking agents.
pub struct Agents {
    db: Database,
    catalog: Arc<Catalog>,
}

impl Agents {
    /// Agents in `db`, resolving skills through `catalog`.
    pub fn new(db: Database, catalog: Arc<Catalog>) -> Self {
        Self { db, catalog }
    }

    /// Creates an agent from `spec`.
    pub async fn create(
        &self,
        tenant: &TenantId,
        audit: &AuditContext,
        spec: &AgentSpec,
    ) -> Result<Agent, SaveError> {
        let new = self.prepare(tenant, spec, None).await?;
        Ok(self.db.tenant(tenant).create_agent(audit, &new).await?)
    }

    /// Saves `spec` as the next version of agent `id`, which the caller read at `expected`
    /// (required: an agent that does not exist is `NotFound` before that is checked, so the
    /// answer tells another tenant nothing).
    pub async fn update(
        &self,
        tenant: &TenantId,
        audit: &AuditContext,
        id: &AgentId,
        expected: Option<i64>,
        spec: &AgentSpec,
    ) -> Result<Agent, SaveError> {
        let store = self.db.tenant(tenant);
        let current = store.agent(id).await?.ok_or(SaveError::NotFound)?;
        let expected = expected.ok_or(SaveError::VersionRequired)?;
        let new = self.prepare(tenant, spec, Some(&current.name)).await?;
        saved(
            store
                .update_agent(audit, id, expected, &new, "agent.update")
                .await?,
        )
    }

    /// Resolves agent `id`'s skills again and saves the new pins as its next version (when
    /// `expected` is given, only if that is its version now).
    pub async fn relock(
        &self,
        tenant: &TenantId,
        audit: &AuditContext,
        id: &AgentId,
        expected: Option<i64>,
    ) -> Result<Agent, SaveError> {
        let store = self.db.tenant(tenant);
        let current = store.agent(id).await?.ok_or(SaveError::NotFound)?;
        if let Some(expected) = expected
            && expected != current.version
        {
            return Err(SaveError::Stale(current.version));
        }
        let spec = spec_of(&current)?;
        let new = self.prepare(tenant, &spec, Some(&current.name)).await?;
        saved(
            store
                .update_agent(audit, id, current.version, &new, "agent.relock")
                .await?,
        )
    }

    /// Deletes agent `id` (when `expected` is given, only if that is its version now).
    pub async fn delete(
        &self,
        tenant: &TenantId,
        audit: &AuditContext,
        id: &AgentId,
        expected: Option<i64>,
    ) -> Result<(), SaveError> {
        saved(
            self.db
                .tenant(tenant)
                .delete_agent(audit, id, expected)
                .await?,
        )
    }

    /// Checks `spec`, resolves its skills and agent steps for `tenant`, and returns what to
    /// store. `saving_over` is the name the agent had, when it is an update.
    async fn prepare(
        &self,
        tenant: &TenantId,
        spec: &AgentSpec,
        saving_over: Option<&str>,
    ) -> Result<NewAgent, SaveError> {
        let plan = spec.check().map_err(SaveError::Invalid)?;
        let mut problems = Vec::new();
        let pins = self.pin(tenant, spec, &plan, &mut problems).await?;
        self.check_agents(tenant, spec, &plan, saving_over, &mut problems)
            .await?;
        if !problems.is_empty() {
            return Err(SaveError::Invalid(problems));
        }
        Ok(NewAgent {
            name: spec.name.clone(),
            description: spec.description.clone(),
            public: spec.public,
            definition: serde_json::to_value(spec)
                .map_err(|e| SaveError::Internal(format!("a definition as JSON: {e}")))?,
            pins,
        })
    }

    /// Resolves every `skill` step as an invocation by `tenant` would, one pin per (skill,
    /// requirement).
    async fn pin(
        &self,
        tenant: &TenantId,
        spec: &AgentSpec,
        plan: &Plan,
        problems: &mut Vec<Problem>,
    ) -> Result<Vec<NewPin>, SaveError> {
        let mut pins: BTreeMap<(String, String), NewPin> = BTreeMap::new();
        for (at, step) in plan.workflow().located_steps() {
            let omniforge_workflow::Step::Skill(skill) = step else {
                continue;
            };
            let requirement = skill.version.clone().unwrap_or_default();
            let key = (skill.skill.as_str().to_owned(), requirement.clone());
            if pins.contains_key(&key) {
                continue;
            }
            let refuse = |message: String| Problem {
                step: Some(skill.id.clone()),
                field: spec.workflow_field(&format!("{at}/skill")),
                message,
            };
            let listing = self
                .catalog
                .listing(tenant, &skill.skill)
                .await
                .map_err(|e| SaveError::Internal(e.to_string()))?;
            let Some(listing) = listing else {
                problems.push(refuse(format!(
                    "no skill {} is visible to this tenant",
                    skill.skill
                )));
                continue;
            };
            let chosen = catalog::choose(&listing, tenant, skill.version.as_deref());
            let version = match chosen {
                Ok((version, _)) => version,
                Err(ResolveError::NotInstalled) => {
                    problems.push(refuse(format!(
                        "{} is another tenant's skill: install it first",
                        skill.skill
                    )));
                    continue;
                }
                Err(e) => {
                    problems.push(refuse(format!("{}: {e}", skill.skill)));
                    continue;
                }
            };
            let (stored, _) = listing
                .version(&version)
                .ok_or_else(|| SaveError::Internal("a chosen version vanished".into()))?;
            pins.insert(
                key,
                NewPin {
                    skill: skill.skill.clone(),
                    requirement,
                    skill_id: listing.skill.id.clone(),
                    version,
                    digest: stored.component_sha256,
                },
            );
        }
        Ok(pins.into_values().collect())
    }

    /// Every `agent` step must name another agent of the tenant, and no chain of agent steps
    /// may lead back to this one.
    async fn check_agents(
        &self,
        tenant: &TenantId,
        spec: &AgentSpec,
        plan: &Plan,
        saving_over: Option<&str>,
        problems: &mut Vec<Problem>,
    ) -> Result<(), SaveError> {
        let steps: Vec<_> = plan
            .workflow()
            .located_steps()
            .into_iter()
            .filter_map(|(at, step)| match step {
                omniforge_workflow::Step::Agent(a) => Some((at, a)),
                _ => None,
            })
            .collect();
        if steps.is_empty() {
            return Ok(());
        }
        // Who calls whom, with this save in place of what it replaces.
        let mut calls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, definition) in self.db.tenant(tenant).agent_definitions().await? {
            if Some(name.as_str()) == saving_over {
                continue;
            }
            calls.insert(name, agent_steps_of(&definition));
        }
        let own: BTreeSet<String> = plan
            .workflow()
            .agents()
            .into_iter()
            .map(str::to_owned)
            .collect();
        calls.insert(spec.name.clone(), own);
        for (at, step) in steps {
            let field = spec.workflow_field(&format!("{at}/agent"));
            let refuse = |message: String| Problem {
                step: Some(step.id.clone()),
                field: field.clone(),
                message,
            };
            if step.agent != spec.name && !calls.contains_key(&step.agent) {
                problems.push(refuse(format!("no agent named {:?}", step.agent)));
            } else if let Some(path) = cycle(&calls, &spec.name, &step.agent) {
                problems.push(refuse(format!(
                    "agent steps would form a cycle: {}",
                    path.join(" → ")
                )));
            }
        }
        Ok(())
    }
}

/// The agents a stored definition's workflow runs (none when it does not read as one).
fn agent_steps_of(definition: &serde_json::Value) -> BTreeSet<String> {
    definition
        .get("workflow")
        .and_then(|w| omniforge_workflow::parse::from_value(w).ok())
        .map(|w| w.agents().into_iter().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The path `from → next → … → from`, if `next` leads back to `from`.
fn cycle(
    calls: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    next: &str,
) -> Option<Vec<String>> {
    let mut path = vec![from.to_owned(), next.to_owned()];
    let mut seen = BTreeSet::new();
    fn walk(
        calls: &BTreeMap<String, BTreeSet<String>>,
        target: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let here = path.last().expect("a path is never empty").clone();
        if here == target {
            return true;
        }
        if !seen.insert(here.clone()) {
            return false;
        }
        for callee in calls.get(&here).into_iter().flatten() {
            path.push(callee.clone());
            if walk(calls, target, path, seen) {
                return true;
            }
            path.pop();
        }
        false
    }
    walk(calls, from, &mut path, &mut seen).then_some(path)
}

/// The definition a stored agent was saved with.
pub fn spec_of(agent: &Agent) -> Result<AgentSpec, SaveError> {
    serde_json::from_value(agent.definition.clone())
        .map_err(|e| SaveError::Internal(format!("stored agent definition: {e}")))
}

fn saved<T>(outcome: Saved<T>) -> Result<T, SaveError> {
    match outcome {
        Saved::Done(value) => Ok(value),
        Saved::NotFound => Err(SaveError::NotFound),
        Saved::Stale(version) => Err(SaveError::Stale(version)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_found_through_other_agents() {
        let calls: BTreeMap<String, BTreeSet<String>> = [
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec!["a"]),
            ("d", vec![]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
        .collect();
        assert_eq!(cycle(&calls, "a", "b").unwrap(), ["a", "b", "c", "a"]);
        assert_eq!(cycle(&calls, "a", "a").unwrap(), ["a", "a"]);
        assert!(cycle(&calls, "d", "a").is_none());
    }
}
