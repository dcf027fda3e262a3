//! Roles, permissions, and what each route requires.

use std::fmt;
use std::str::FromStr;

use omniforge_store::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! permissions {
    ($($(#[$doc:meta])* $variant:ident = $text:literal),+ $(,)?) => {
        /// Something a principal may do. Routes require one; roles grant sets of them; API
        /// keys and tokens may be limited to fewer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        pub enum Permission {
            $($(#[$doc])* #[serde(rename = $text)] $variant),+
        }

        impl Permission {
            /// Every permission.
            pub const ALL: &'static [Permission] = &[$(Self::$variant),+];

            /// Its name, as in scopes and the OpenAPI document.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl FromStr for Permission {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, String> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!("unknown permission {other:?}")),
                }
            }
        }
    };
}

permissions! {
    /// Create, list, change and suspend tenants (platform admins only).
    TenantManage = "tenant:manage",
    /// Read the principal's own tenant.
    TenantRead = "tenant:read",
    /// Export all of the tenant's data.
    TenantExport = "tenant:export",
    /// List and read users.
    UserRead = "user:read",
    /// Create and disable users and change their roles.
    UserManage = "user:manage",
    /// Grant and take away the owner role (owners only: `user:manage` alone cannot make
    /// anyone an owner).
    OwnerManage = "owner:manage",
    /// Create, list and revoke API keys (one's own; all of the tenant's with `user:manage`).
    ApiKeyManage = "apikey:manage",
    /// Read the audit log.
    AuditRead = "audit:read",
    /// Set, list and delete the tenant's secrets (never read their values).
    SecretManage = "secret:manage",
    /// Read and download skills.
    SkillRead = "skill:read",
    /// Publish, change and yank skills.
    SkillPublish = "skill:publish",
    /// Invoke skills.
    SkillInvoke = "skill:invoke",
    /// Read agents and their lockfiles.
    AgentRead = "agent:read",
    /// Create, change, relock and delete agents.
    AgentWrite = "agent:write",
    /// Read tasks and their events.
    TaskRead = "task:read",
    /// Submit, cancel, retry and delete tasks (and invoke asynchronously).
    TaskWrite = "task:write",
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The permissions a role grants. Owners hold every tenant permission; `tenant:manage` comes
/// only from being a platform admin.
pub fn role_permissions(role: Role) -> &'static [Permission] {
    use Permission::*;
    match role {
        Role::Owner => &[
            TenantRead,
            TenantExport,
            UserRead,
            UserManage,
            OwnerManage,
            ApiKeyManage,
            AuditRead,
            SecretManage,
            SkillRead,
            SkillPublish,
            SkillInvoke,
            AgentRead,
            AgentWrite,
            TaskRead,
            TaskWrite,
        ],
        Role::Admin => &[
            TenantRead,
            UserRead,
            UserManage,
            ApiKeyManage,
            AuditRead,
            SecretManage,
            SkillRead,
            SkillPublish,
            SkillInvoke,
            AgentRead,
            AgentWrite,
            TaskRead,
            TaskWrite,
        ],
        Role::Developer => &[
            TenantRead,
            UserRead,
            ApiKeyManage,
            SkillRead,
            SkillPublish,
            SkillInvoke,
            AgentRead,
            AgentWrite,
            TaskRead,
            TaskWrite,
        ],
        Role::Operator => &[
            TenantRead,
            UserRead,
            ApiKeyManage,
            AuditRead,
            SkillRead,
            SkillInvoke,
            AgentRead,
            TaskRead,
            TaskWrite,
        ],
        Role::Viewer => &[TenantRead, UserRead, SkillRead, AgentRead, TaskRead],
    }
}

/// A set of permissions, small enough to copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PermissionSet(u32);

impl PermissionSet {
    /// Every permission.
    pub fn all() -> Self {
        Permission::ALL.iter().copied().collect()
    }

    /// Whether `permission` is in the set.
    pub fn contains(self, permission: Permission) -> bool {
        self.0 & Self::bit(permission) != 0
    }

    /// Adds `permission`.
    pub fn insert(&mut self, permission: Permission) {
        self.0 |= Self::bit(permission);
    }

    /// The permissions in both sets.
    pub fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether every permission of `other` is in this set.
    pub fn covers(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The permissions, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(move |p| self.contains(*p))
    }

    fn bit(permission: Permission) -> u32 {
        1 << (permission as u32)
    }

    /// What `roles` grant, plus `tenant:manage` for platform admins.
    pub fn for_roles(roles: &[Role], platform_admin: bool) -> Self {
        let mut set: Self = roles
            .iter()
            .flat_map(|r| role_permissions(*r).iter().copied())
            .collect();
        if platform_admin {
            set.insert(Permission::TenantManage);
        }
        set
    }

    /// What `user`'s roles grant (with `tenant:manage` when they are a platform admin).
    pub fn of_user(user: &omniforge_store::User) -> Self {
        Self::for_roles(&user.roles, user.is_platform_admin)
    }

    /// The permission names, as stored in a key's scopes.
    pub fn names(self) -> Vec<String> {
        self.iter().map(|p| p.as_str().to_owned()).collect()
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses stored or requested scopes: permission names, or `*` for all.
    pub fn from_scopes<S: AsRef<str>>(scopes: &[S]) -> Result<Self, String> {
        let mut set = Self::default();
        for scope in scopes {
            match scope.as_ref() {
                "*" => return Ok(Self::all()),
                name => set.insert(name.parse()?),
            }
        }
        Ok(set)
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = Self::default();
        for permission in iter {
            set.insert(permission);
        }
        set
    }
}

/// What a route requires of its caller: declared once per route in the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials.
    Public,
    /// Any authenticated principal.
    Authenticated,
    /// A principal holding this permission.
    Requires(Permission),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_fit_in_the_set() {
        assert!(Permission::ALL.len() <= 32);
        assert_eq!(PermissionSet::all().iter().count(), Permission::ALL.len());
    }

    #[test]
    fn roles_nest_and_only_platform_admins_manage_tenants() {
        let owner = PermissionSet::for_roles(&[Role::Owner], false);
        for role in Role::ALL {
            let set = PermissionSet::for_roles(&[*role], false);
            assert!(owner.covers(set), "owner must cover {role}");
            assert!(!set.contains(Permission::TenantManage));
        }
        assert!(PermissionSet::for_roles(&[], true).contains(Permission::TenantManage));
        let viewer = PermissionSet::for_roles(&[Role::Viewer], false);
        assert!(!viewer.contains(Permission::ApiKeyManage));
    }

    #[test]
    fn scopes_parse_and_reject_unknown_names() {
        let set = PermissionSet::from_scopes(&["skill:read", "audit:read"]).unwrap();
        assert!(set.contains(Permission::SkillRead) && !set.contains(Permission::SkillInvoke));
        assert_eq!(
            PermissionSet::from_scopes(&["*"]).unwrap(),
            PermissionSet::all()
        );
        assert!(PermissionSet::from_scopes(&["skill:write"]).is_err());
    }
}
