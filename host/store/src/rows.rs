//! Raw rows as both backends return them, and their conversion into records. Every field is a
//! type that decodes from SQLite and PostgreSQL alike.

use omniforge_types::{ApiKeyId, TenantId, UserId};

use crate::error::StoreError;
use crate::records::{ApiKey, AuditEvent, Role, Tenant, User};

pub(crate) const TENANT_COLUMNS: &str = "id, slug, name, status, created_at_ms, updated_at_ms";
pub(crate) const USER_COLUMNS: &str =
    "id, tenant_id, email, display_name, is_platform_admin, status, created_at_ms";
pub(crate) const API_KEY_COLUMNS: &str = "id, tenant_id, user_id, name, prefix, scopes, \
     created_by, created_at_ms, expires_at_ms, revoked_at_ms, last_used_at_ms";
pub(crate) const AUDIT_COLUMNS: &str = "id, tenant_id, actor, action, resource_type, \
     resource_id, request_id, details, created_at_ms";

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

#[derive(sqlx::FromRow)]
pub(crate) struct TenantRow {
    id: String,
    slug: String,
    name: String,
    status: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = StoreError;

    fn try_from(row: TenantRow) -> Result<Self, StoreError> {
        Ok(Tenant {
            status: row.status.parse().map_err(|e| corrupt("tenant", e))?,
            id: TenantId::from(row.id),
            slug: row.slug,
            name: row.name,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    tenant_id: String,
    email: String,
    display_name: String,
    is_platform_admin: bool,
    status: String,
    created_at_ms: i64,
}

impl UserRow {
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn into_user(self, roles: Vec<Role>) -> Result<User, StoreError> {
        Ok(User {
            status: self.status.parse().map_err(|e| corrupt("user", e))?,
            id: UserId::from(self.id),
            tenant_id: TenantId::from(self.tenant_id),
            email: self.email,
            display_name: self.display_name,
            is_platform_admin: self.is_platform_admin,
            roles,
            created_at_ms: self.created_at_ms,
        })
    }
}

/// One role binding, for attaching roles to users read in bulk.
#[derive(sqlx::FromRow)]
pub(crate) struct RoleRow {
    pub(crate) user_id: String,
    pub(crate) role: String,
}

/// Attaches each user's roles (sorted, most powerful first).
pub(crate) fn users_with_roles(
    users: Vec<UserRow>,
    roles: Vec<RoleRow>,
) -> Result<Vec<User>, StoreError> {
    users
        .into_iter()
        .map(|user| {
            let mut held: Vec<Role> = roles
                .iter()
                .filter(|r| r.user_id == user.id)
                .map(|r| r.role.parse().map_err(|e| corrupt("role binding", e)))
                .collect::<Result<_, _>>()?;
            held.sort();
            user.into_user(held)
        })
        .collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: String,
    tenant_id: String,
    user_id: String,
    name: String,
    prefix: String,
    scopes: String,
    created_by: Option<String>,
    created_at_ms: i64,
    expires_at_ms: Option<i64>,
    revoked_at_ms: Option<i64>,
    last_used_at_ms: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> Result<Self, StoreError> {
        Ok(ApiKey {
            scopes: serde_json::from_str(&row.scopes).map_err(|e| corrupt("api key scopes", e))?,
            id: ApiKeyId::from(row.id),
            tenant_id: TenantId::from(row.tenant_id),
            user_id: UserId::from(row.user_id),
            name: row.name,
            prefix: row.prefix,
            created_by: row.created_by.map(UserId::from),
            created_at_ms: row.created_at_ms,
            expires_at_ms: row.expires_at_ms,
            revoked_at_ms: row.revoked_at_ms,
            last_used_at_ms: row.last_used_at_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: String,
    tenant_id: Option<String>,
    actor: String,
    action: String,
    resource_type: String,
    resource_id: String,
    request_id: String,
    details: String,
    created_at_ms: i64,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditEvent {
            details: serde_json::from_str(&row.details).map_err(|e| corrupt("audit details", e))?,
            id: row.id,
            tenant_id: row.tenant_id.map(TenantId::from),
            actor: row.actor,
            action: row.action,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            request_id: row.request_id,
            created_at_ms: row.created_at_ms,
        })
    }
}

/// Converts every row, failing on the first corrupt one.
pub(crate) fn convert<R, T: TryFrom<R, Error = StoreError>>(
    rows: Vec<R>,
) -> Result<Vec<T>, StoreError> {
    rows.into_iter().map(T::try_from).collect()
}
