//! Changes that cached views must see at once: a skill's metadata, versions, visibility or an
//! installation of it, or a tenant's policy. Callers publish a [`Change`] to the service's
//! [`ChangeFeed`]; [`LocalChanges`] applies it to this process's caches. With several
//! replicas a shared feed (Redis pub/sub, step 12) delivers each change to every replica's
//! [`Caches`] instead, and callers stay as they are.

use std::sync::Arc;

use omniforge_store::TenantId;
use omniforge_types::SkillName;

use crate::catalog::Catalog;
use crate::policy::Policies;

/// Something cached views of skills and policies must not keep serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A skill changed for every tenant that sees it.
    Skill(SkillName),
    /// A tenant's policy changed.
    Policy(TenantId),
}

/// Where changes go so that every replica's caches see them.
pub trait ChangeFeed: Send + Sync + 'static {
    /// Announces `change`; the caches of this process have forgotten it when this returns.
    fn publish(&self, change: Change);
}

/// The caches of one process that changes invalidate.
#[derive(Clone)]
pub struct Caches {
    /// Skill listings.
    pub catalog: Arc<Catalog>,
    /// Tenant policies.
    pub policies: Arc<Policies>,
}

impl Caches {
    /// Forgets what `change` makes stale.
    pub fn apply(&self, change: &Change) {
        match change {
            Change::Skill(full_name) => self.catalog.forget(full_name),
            Change::Policy(tenant) => self.policies.forget(tenant),
        }
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
