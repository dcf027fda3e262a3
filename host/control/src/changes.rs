//! Changes that cached views must see at once: a skill's metadata, versions or visibility, an
//! installation, a tenant's policy, an API key revoked, a user's roles or a tenant's status.
//! Callers publish a [`Change`] to the service's [`ChangeFeed`]; [`LocalChanges`] applies it
//! to this process's caches. With several replicas the shared feed
//! ([`crate::shared::changes::RedisChanges`]) delivers each change to every replica's
//! [`Caches`] too, and callers stay as they are.
//!
//! Whoever follows changes live (an MCP client told that its tool list changed) subscribes
//! to [`Applied`]: every change a replica's caches apply, whichever replica it came from.

use std::sync::Arc;

use omniforge_store::{ApiKeyId, TenantId, UserId};
use omniforge_types::SkillName;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::catalog::Catalog;
use crate::policy::Policies;

/// Something cached views of skills, policies and credentials must not keep serving. It
/// travels between replicas as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A skill changed (published, updated, a version yanked, deleted) for every tenant
    /// that sees it.
    Skill {
        /// The skill.
        skill: SkillName,
        /// The tenant it belongs to.
        owner: TenantId,
    },
    /// A tenant installed a skill or removed its installation.
    Installation {
        /// The installing tenant.
        tenant: TenantId,
        /// The skill.
        skill: SkillName,
    },
    /// A tenant's policy changed.
    Policy(TenantId),
    /// An API key was revoked.
    ApiKey(ApiKeyId),
    /// A user's roles or status changed: their keys must be verified again.
    User {
        /// The user's tenant.
        tenant: TenantId,
        /// The user.
        user: UserId,
    },
    /// A tenant was suspended or resumed.
    Tenant(TenantId),
    /// Changes may have been missed (the shared feed was cut): forget everything cached.
    Everything,
}

impl Change {
    /// Whether the skills `tenant` can invoke may have changed: its own skills, its
    /// installations, or a skill it has installed (`installed` says which; a superset only
    /// costs a needless refetch).
    pub fn touches_skills_of(
        &self,
        tenant: &TenantId,
        installed: impl Fn(&SkillName) -> bool,
    ) -> bool {
        match self {
            Self::Skill { skill, owner } => owner == tenant || installed(skill),
            Self::Installation {
                tenant: installer, ..
            } => installer == tenant,
            Self::Everything => true,
            Self::Policy(_) | Self::ApiKey(_) | Self::User { .. } | Self::Tenant(_) => false,
        }
    }
}

/// Where changes go so that every replica's caches see them.
pub trait ChangeFeed: Send + Sync + 'static {
    /// Announces `change`; the caches of this process have forgotten it when this returns.
    fn publish(&self, change: Change);
}

/// The changes this process applied, for those who follow them live.
#[derive(Debug, Clone)]
pub struct Applied(broadcast::Sender<Change>);

/// Changes a slow follower may fall behind by before it is told it missed some.
const FOLLOWER_BACKLOG: usize = 1024;

impl Applied {
    /// A stream of changes nobody follows yet.
    pub fn new() -> Self {
        Self(broadcast::channel(FOLLOWER_BACKLOG).0)
    }

    /// Every change applied from now on. A follower that falls more than
    /// `FOLLOWER_BACKLOG` behind receives `Lagged` and must assume anything changed.
    pub fn follow(&self) -> broadcast::Receiver<Change> {
        self.0.subscribe()
    }

    fn announce(&self, change: &Change) {
        // No follower is not an error: most changes have none.
        let _ = self.0.send(change.clone());
    }
}

impl Default for Applied {
    fn default() -> Self {
        Self::new()
    }
}

/// Verified credentials a server caches (its API keys), which revocations and role changes
/// make stale. The server implements it; this crate only says when to forget.
pub trait CredentialCache: Send + Sync + 'static {
    /// Forgets one key.
    fn forget_key(&self, key: &ApiKeyId);
    /// Forgets every key of one user.
    fn forget_user(&self, tenant: &TenantId, user: &UserId);
    /// Forgets every key of one tenant.
    fn forget_tenant(&self, tenant: &TenantId);
    /// Forgets every key.
    fn forget_all(&self);
}

/// The caches of one process that changes invalidate.
#[derive(Clone)]
pub struct Caches {
    /// Skill listings.
    pub catalog: Arc<Catalog>,
    /// Tenant policies.
    pub policies: Arc<Policies>,
    /// Verified credentials.
    pub credentials: Arc<dyn CredentialCache>,
    /// Told of every change once the caches have forgotten it.
    pub applied: Applied,
}

impl Caches {
    /// Forgets what `change` makes stale, then tells the followers.
    pub fn apply(&self, change: &Change) {
        match change {
            Change::Skill { skill, .. } | Change::Installation { skill, .. } => {
                self.catalog.forget(skill)
            }
            Change::Policy(tenant) => self.policies.forget(tenant),
            Change::ApiKey(key) => self.credentials.forget_key(key),
            Change::User { tenant, user } => self.credentials.forget_user(tenant, user),
            Change::Tenant(tenant) => {
                self.credentials.forget_tenant(tenant);
                self.policies.forget(tenant);
            }
            Change::Everything => {
                self.catalog.forget_all();
                self.policies.forget_all();
                self.credentials.forget_all();
            }
        }
        self.applied.announce(change);
    }
}

/// One process: a change is applied to its own caches and goes nowhere else (other servers
/// see it after `skills.metadata_recheck_ms`).
pub struct LocalChanges(pub Caches);

impl ChangeFeed for LocalChanges {
    fn publish(&self, change: Change) {
        self.0.apply(&change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantId {
        TenantId::new(id)
    }

    #[test]
    fn a_change_touches_the_owner_the_installer_and_whoever_installed_the_skill() {
        let (acme, other) = (tenant("ten_acme"), tenant("ten_other"));
        let skill: SkillName = "acme/hello".parse().unwrap();
        let published = Change::Skill {
            skill: skill.clone(),
            owner: acme.clone(),
        };
        assert!(published.touches_skills_of(&acme, |_| false));
        assert!(!published.touches_skills_of(&other, |_| false));
        assert!(published.touches_skills_of(&other, |s| *s == skill));
        let installed = Change::Installation {
            tenant: other.clone(),
            skill,
        };
        assert!(installed.touches_skills_of(&other, |_| false));
        assert!(!installed.touches_skills_of(&acme, |_| true));
        assert!(!Change::Policy(acme.clone()).touches_skills_of(&acme, |_| true));
        assert!(Change::Everything.touches_skills_of(&acme, |_| false));
    }

    #[test]
    fn changes_travel_as_json_and_come_back_the_same() {
        let changes = [
            Change::Skill {
                skill: "acme/hello".parse().unwrap(),
                owner: tenant("ten_acme"),
            },
            Change::Policy(tenant("ten_acme")),
            Change::ApiKey(ApiKeyId::new("key_1")),
            Change::User {
                tenant: tenant("ten_acme"),
                user: UserId::new("usr_1"),
            },
            Change::Tenant(tenant("ten_acme")),
            Change::Everything,
        ];
        for change in changes {
            let text = serde_json::to_string(&change).unwrap();
            assert_eq!(
                serde_json::from_str::<Change>(&text).unwrap(),
                change,
                "{text}"
            );
        }
    }
}
