//! What the API answers: stable JSON shapes, separate from the stored records so the schema
//! can change without changing the API.

use omniforge_store::{ApiKey, AuditEvent, Role, Tenant, TenantStatus, User, UserStatus};
use serde::Serialize;
use utoipa::ToSchema;

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    /// Its id.
    pub id: String,
    /// Unique short name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// `active` or `suspended`.
    #[schema(value_type = String, example = "active")]
    pub status: TenantStatus,
    /// Creation time, unix ms.
    pub created_at_ms: i64,
    /// Last change, unix ms.
    pub updated_at_ms: i64,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id.to_string(),
            slug: t.slug,
            name: t.name,
            status: t.status,
            created_at_ms: t.created_at_ms,
            updated_at_ms: t.updated_at_ms,
        }
    }
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Its id.
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Email, unique in the tenant.
    pub email: String,
    /// Name to show.
    pub display_name: String,
    /// Roles: owner, admin, developer, operator, viewer.
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
    /// Whether the user administers the platform.
    pub is_platform_admin: bool,
    /// `active` or `disabled`.
    #[schema(value_type = String, example = "active")]
    pub status: UserStatus,
    /// Creation time, unix ms.
    pub created_at_ms: i64,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            tenant_id: u.tenant_id.to_string(),
            email: u.email,
            display_name: u.display_name,
            roles: u.roles,
            is_platform_admin: u.is_platform_admin,
            status: u.status,
            created_at_ms: u.created_at_ms,
        }
    }
}

/// An API key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// Its id (for revoking it).
    pub id: String,
    /// The user it acts as.
    pub user_id: String,
    /// Its label.
    pub name: String,
    /// The public part, `ofk_<prefix>_…`, to recognise it.
    pub prefix: String,
    /// Permissions it is limited to (`*`: all of its user's, as their roles change).
    pub scopes: Vec<String>,
    /// The user who created it; absent when the system did (bootstrap, a tenant's first key).
    pub created_by: Option<String>,
    /// Creation time, unix ms.
    pub created_at_ms: i64,
    /// Expiry, unix ms.
    pub expires_at_ms: Option<i64>,
    /// Revocation time, unix ms.
    pub revoked_at_ms: Option<i64>,
    /// Last use (to about a minute), unix ms.
    pub last_used_at_ms: Option<i64>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            user_id: k.user_id.to_string(),
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            created_by: k.created_by.map(|u| u.to_string()),
            created_at_ms: k.created_at_ms,
            expires_at_ms: k.expires_at_ms,
            revoked_at_ms: k.revoked_at_ms,
            last_used_at_ms: k.last_used_at_ms,
        }
    }
}

/// A new API key: the only time its full text is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The whole key, `ofk_<prefix>_<secret>`. Store it now: it cannot be shown again.
    pub key: String,
    /// The key's record.
    pub api_key: ApiKeyView,
}

/// One recorded change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    /// Opaque id (`aud_…`), ordered by time.
    pub id: String,
    /// The tenant affected.
    pub tenant_id: Option<String>,
    /// Who: `user:<id> key:<id>` (with ` minted-by:user:<id>` for a key another user
    /// minted), `user:<id> token`, `platform` (a platform admin of another tenant) or
    /// `system:<what>`.
    pub actor: String,
    /// What: `resource.verb`.
    pub action: String,
    /// The kind of resource.
    pub resource_type: String,
    /// Its id.
    pub resource_id: String,
    /// The request it came with.
    pub request_id: String,
    /// Extra facts.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// When, unix ms.
    pub created_at_ms: i64,
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id,
            tenant_id: e.tenant_id.map(|t| t.to_string()),
            actor: e.actor,
            action: e.action,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            request_id: e.request_id,
            details: e.details,
            created_at_ms: e.created_at_ms,
        }
    }
}

macro_rules! page {
    ($(#[$doc:meta])* $name:ident, $item:ty) => {
        $(#[$doc])*
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            /// This page's items.
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; absent on the last page.
            pub next_cursor: Option<String>,
        }
    };
}

page!(
    /// A page of tenants.
    TenantPage,
    TenantView
);
page!(
    /// A page of users.
    UserPage,
    UserView
);
page!(
    /// A page of API keys.
    ApiKeyPage,
    ApiKeyView
);
page!(
    /// A page of audit events, newest first.
    AuditEventPage,
    AuditEventView
);
