//! The rows OmniForge stores, as typed values.

use std::fmt;

use omniforge_types::{ApiKeyId, TenantId, UserId};
use serde::Serialize;

/// Current time in unix milliseconds, the unit every `*_at_ms` column uses.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A new identifier: `prefix` + `_` + a time-ordered UUIDv7 in hex, so ids sort by creation
/// and serve as pagination cursors.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored and serialized text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, String> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?} (expected one of: {})",
                        stringify!($name).to_lowercase(),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(
    /// Whether a tenant may use the platform.
    TenantStatus {
        /// In service.
        Active = "active",
        /// Every principal of the tenant is refused until it is resumed.
        Suspended = "suspended",
    }
);

text_enum!(
    /// Whether a user may authenticate.
    UserStatus {
        /// May authenticate.
        Active = "active",
        /// Refused; their API keys were revoked when they were disabled.
        Disabled = "disabled",
    }
);

text_enum!(
    /// A role a user holds in their tenant; the server maps roles to permissions.
    Role {
        /// Everything in the tenant, including exporting it and granting ownership.
        Owner = "owner",
        /// Manages users, keys and skills.
        Admin = "admin",
        /// Publishes and invokes skills.
        Developer = "developer",
        /// Runs and watches skills, reads the audit log.
        Operator = "operator",
        /// Reads.
        Viewer = "viewer",
    }
);

/// A tenant: the unit of isolation, quota and ownership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Unique, URL-safe short name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Active or suspended.
    pub status: TenantStatus,
    /// Creation time, unix ms.
    pub created_at_ms: i64,
    /// Last change, unix ms.
    pub updated_at_ms: i64,
}

/// A user of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// The tenant it belongs to.
    pub tenant_id: TenantId,
    /// Email address, unique within the tenant.
    pub email: String,
    /// Name to show.
    pub display_name: String,
    /// Whether the user administers the platform (all tenants).
    pub is_platform_admin: bool,
    /// Active or disabled.
    pub status: UserStatus,
    /// Roles held in the tenant.
    pub roles: Vec<Role>,
    /// Creation time, unix ms.
    pub created_at_ms: i64,
}

/// An API key's stored record. The secret is never stored; only its argon2id hash is, and
/// that hash appears only in [`ApiKeyCredential`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// The tenant it belongs to.
    pub tenant_id: TenantId,
    /// The user it acts as.
    pub user_id: UserId,
    /// A label chosen by its creator.
    pub name: String,
    /// The public, indexed part of the key (`ofk_<prefix>_…`), shown in listings.
    pub prefix: String,
    /// Permissions the key is limited to (`*` for all of its user's).
    pub scopes: Vec<String>,
    /// The user who created it; `None` when the system did (bootstrap, a new tenant's
    /// first key).
    pub created_by: Option<UserId>,
    /// Creation time, unix ms.
    pub created_at_ms: i64,
    /// When it stops working, unix ms.
    pub expires_at_ms: Option<i64>,
    /// When it was revoked, unix ms.
    pub revoked_at_ms: Option<i64>,
    /// When it was last used (updated at most about once a minute), unix ms.
    pub last_used_at_ms: Option<i64>,
}

/// What authentication needs to check a presented key: the record, the stored hash, and
/// the state of its user and tenant.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyCredential {
    /// The key.
    pub key: ApiKey,
    /// The argon2id PHC string of the key's secret.
    pub secret_hash: String,
    /// The key's user.
    pub user: User,
    /// The user's tenant.
    pub tenant_status: TenantStatus,
}

impl fmt::Debug for ApiKeyCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyCredential")
            .field("key", &self.key)
            .field("secret_hash", &"<redacted>")
            .field("user", &self.user)
            .field("tenant_status", &self.tenant_status)
            .finish()
    }
}

/// A new API key to store; the caller generated the prefix and hashed the secret.
#[derive(Clone)]
pub struct NewApiKey {
    /// The user it acts as (must belong to the tenant).
    pub user_id: UserId,
    /// A label.
    pub name: String,
    /// The public prefix.
    pub prefix: String,
    /// The argon2id PHC string of the secret.
    pub secret_hash: String,
    /// Permission scopes.
    pub scopes: Vec<String>,
    /// Optional expiry, unix ms.
    pub expires_at_ms: Option<i64>,
    /// The user creating it (`None`: the system).
    pub created_by: Option<UserId>,
}

/// A new user to store.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Email, unique within the tenant.
    pub email: String,
    /// Name to show.
    pub display_name: String,
    /// Roles to grant.
    pub roles: Vec<Role>,
    /// Whether the user administers the platform.
    pub is_platform_admin: bool,
}

/// Who is changing something and in which request: every mutation records it in an audit
/// event written in the same transaction.
#[derive(Debug, Clone)]
pub struct AuditContext {
    /// The acting principal (`user:<id> key:<id>`, `user:<id> token`, `system:<what>`).
    pub actor: String,
    /// The tenant the actor belongs to; `None` for the system. A change to another tenant
    /// (a platform admin's) is recorded in that tenant's log as done by `platform`, and in
    /// the actor's own tenant's log with the full actor.
    pub actor_tenant: Option<TenantId>,
    /// The request id the change came with.
    pub request_id: String,
}

/// The actor recorded in a tenant's own log for changes a platform admin of another tenant
/// made: who administers the platform is not the tenant's business.
pub const PLATFORM_ACTOR: &str = "platform";

impl AuditContext {
    /// A change made by the system itself (`system:<what>`), outside any request.
    pub fn system(what: &str, request_id: impl Into<String>) -> Self {
        Self {
            actor: format!("system:{what}"),
            actor_tenant: None,
            request_id: request_id.into(),
        }
    }

    /// The actor as `tenant`'s own log records it.
    pub fn actor_in(&self, tenant: &str) -> &str {
        match &self.actor_tenant {
            Some(own) if own.as_str() != tenant => PLATFORM_ACTOR,
            _ => &self.actor,
        }
    }

    /// The actor's own tenant when the change concerns another tenant: that tenant's log
    /// gets a copy of the event with the full actor.
    pub fn mirror_tenant(&self, tenant: &str) -> Option<&TenantId> {
        self.actor_tenant
            .as_ref()
            .filter(|own| own.as_str() != tenant)
    }
}

/// One recorded mutation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// Opaque id (`aud_` + a UUIDv7), ordered by time; also the pagination cursor.
    pub id: String,
    /// The tenant affected.
    pub tenant_id: Option<TenantId>,
    /// Who did it.
    pub actor: String,
    /// What was done, `resource.verb` (e.g. `api_key.create`).
    pub action: String,
    /// The kind of resource changed.
    pub resource_type: String,
    /// Its id.
    pub resource_id: String,
    /// The request it came with.
    pub request_id: String,
    /// Extra facts (never secrets).
    pub details: serde_json::Value,
    /// When, unix ms.
    pub created_at_ms: i64,
}

/// Which audit events to list: newest first, all filters optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact action.
    pub action: Option<String>,
    /// Exact resource type.
    pub resource_type: Option<String>,
    /// Exact resource id.
    pub resource_id: Option<String>,
    /// Exact actor.
    pub actor: Option<String>,
    /// Created at or after, unix ms.
    pub since_ms: Option<i64>,
    /// Created before, unix ms.
    pub until_ms: Option<i64>,
    /// Only events with an id below this (the previous page's last id).
    pub before_id: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// Everything a tenant owns, for `GET /api/v1/tenants/{id}/export`. No secrets: key hashes
/// are left out.
#[derive(Debug, Clone, Serialize)]
pub struct TenantExport {
    /// The tenant.
    pub tenant: Tenant,
    /// Its users and their roles.
    pub users: Vec<User>,
    /// Its API keys (without hashes).
    pub api_keys: Vec<ApiKey>,
    /// Its audit log, oldest first.
    pub audit_events: Vec<AuditEvent>,
    /// Namespaces it owns.
    pub namespaces: Vec<String>,
    /// Its skills, deleted ones included.
    pub skills: Vec<crate::skills::Skill>,
    /// Every version of its skills.
    pub skill_versions: Vec<crate::skills::SkillVersion>,
    /// Its installations of other tenants' skills.
    pub installations: Vec<crate::installations::Installation>,
    /// Its policy document, if one was set.
    pub policy: Option<serde_json::Value>,
    /// What its skills keep in the `kv` capability.
    pub kv_entries: Vec<crate::kv::KvExportEntry>,
    /// Its secrets' names and metadata; never their values, which stay sealed in the
    /// database under the server's key and are set again from their source after a restore.
    pub secrets: Vec<crate::secrets::SecretRecord>,
    /// Its tasks not yet purged, oldest first, each with its events.
    pub tasks: Vec<crate::tasks::ExportedTask>,
    /// Its agents, deleted ones included, each with every saved version.
    pub agents: Vec<crate::agents::ExportedAgent>,
}
