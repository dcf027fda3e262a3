//! Tenant-scoped repositories: users, role bindings, API keys, the audit log and exports.
//!
//! [`TenantStore`] is the only way to reach tenant-owned rows. It is built from a
//! [`TenantId`] (in the server, the authenticated principal's) and every query it runs filters
//! by that tenant, so a query that forgets the tenant cannot be written against it; a row of
//! another tenant reads as absent (`None`), which the server answers 404.

use omniforge_types::{ApiKeyId, TenantId, UserId};
use serde_json::json;

use crate::audit::{page_size, record_audit};
use crate::database::{BeginExclusive, Database, with_pool};
use crate::error::{StoreError, conflict_on_unique};
use crate::records::{
    ApiKey, AuditContext, AuditEvent, AuditFilter, NewApiKey, NewUser, Role, Tenant, TenantExport,
    User, UserStatus, new_id, now_ms,
};
use crate::rows::{
    API_KEY_COLUMNS, AUDIT_COLUMNS, ApiKeyRow, AuditRow, RoleRow, TENANT_COLUMNS, TenantRow,
    USER_COLUMNS, UserRow, convert, users_with_roles,
};

/// The number of active owners of `$tenant`, counted on `$conn` (inside the transaction
/// that changes them, so the count includes its own changes).
macro_rules! active_owners {
    ($conn:expr, $tenant:expr) => {{
        let owners: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM role_bindings r JOIN users u \
             ON u.tenant_id = r.tenant_id AND u.id = r.user_id \
             WHERE r.tenant_id = $1 AND r.role = 'owner' AND u.status = 'active'",
        )
        .bind($tenant.as_str())
        .fetch_one($conn)
        .await?;
        owners
    }};
}

/// Refuses a change that leaves a tenant that had an active owner without one. Checked after
/// the change, inside its exclusive transaction: two owners demoting each other at once
/// cannot both see the other still there.
fn ensure_an_owner_remains(before: i64, after: i64) -> Result<(), StoreError> {
    if before > 0 && after == 0 {
        return Err(StoreError::Conflict(
            "a tenant keeps at least one active owner".into(),
        ));
    }
    Ok(())
}

/// Repositories scoped to one tenant.
#[derive(Debug, Clone, Copy)]
pub struct TenantStore<'a> {
    db: &'a Database,
    tenant: &'a TenantId,
}

impl Database {
    /// The repositories of `tenant`.
    pub fn tenant<'a>(&'a self, tenant: &'a TenantId) -> TenantStore<'a> {
        TenantStore { db: self, tenant }
    }
}

impl TenantStore<'_> {
    /// The tenant this store is scoped to.
    pub fn tenant_id(&self) -> &TenantId {
        self.tenant
    }

    pub(crate) fn db(&self) -> &Database {
        self.db
    }

    /// The tenant's own record.
    pub async fn get(&self) -> Result<Option<Tenant>, StoreError> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1");
        let row: Option<TenantRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(Tenant::try_from).transpose()
    }

    /// Creates a user with roles. An email already used in the tenant is a conflict.
    pub async fn create_user(
        &self,
        audit: &AuditContext,
        user: NewUser,
    ) -> Result<User, StoreError> {
        let id = new_id("usr");
        let now = now_ms();
        let mut roles = user.roles.clone();
        roles.sort();
        roles.dedup();
        with_pool!(self.db, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO users (id, tenant_id, email, display_name, is_platform_admin, \
                 status, created_at_ms) VALUES ($1, $2, $3, $4, $5, 'active', $6)",
            )
            .bind(&id)
            .bind(self.tenant.as_str())
            .bind(&user.email)
            .bind(&user.display_name)
            .bind(user.is_platform_admin)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                conflict_on_unique(e, format!("a user with email {:?} exists", user.email))
            })?;
            for role in &roles {
                sqlx::query(
                    "INSERT INTO role_bindings (tenant_id, user_id, role, created_at_ms) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(self.tenant.as_str())
                .bind(&id)
                .bind(role.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            let details = json!({ "email": user.email, "roles": roles });
            record_audit!(
                &mut *tx,
                self.tenant.as_str(),
                audit,
                "user.create",
                "user",
                &id,
                details
            )?;
            tx.commit().await?;
        });
        self.get_user(&UserId::from(id))
            .await?
            .ok_or_else(|| StoreError::Corrupt("a created user vanished".into()))
    }

    /// One page of users ordered by id, after `after` (the previous page's last id).
    pub async fn list_users(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) \
             ORDER BY id LIMIT $3"
        );
        let users: Vec<UserRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant.as_str())
                .bind(after)
                .bind(page_size(limit))
                .fetch_all(pool)
                .await?
        });
        let (Some(first), Some(last)) = (users.first(), users.last()) else {
            return Ok(Vec::new());
        };
        // The page is a contiguous id range, so one range query fetches exactly its roles.
        let roles = self.roles_between(first.id(), last.id()).await?;
        users_with_roles(users, roles)
    }

    /// A user of this tenant.
    pub async fn get_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2");
        let user: Option<UserRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant.as_str())
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?
        });
        let Some(user) = user else { return Ok(None) };
        let roles = self.roles_between(id.as_str(), id.as_str()).await?;
        Ok(users_with_roles(vec![user], roles)?.pop())
    }

    async fn roles_between(&self, first: &str, last: &str) -> Result<Vec<RoleRow>, StoreError> {
        Ok(with_pool!(self.db, |pool| {
            sqlx::query_as(
                "SELECT user_id, role FROM role_bindings \
                 WHERE tenant_id = $1 AND user_id >= $2 AND user_id <= $3",
            )
            .bind(self.tenant.as_str())
            .bind(first)
            .bind(last)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Replaces a user's roles. Taking the last active owner's ownership away is a conflict.
    pub async fn set_roles(
        &self,
        audit: &AuditContext,
        id: &UserId,
        roles: &[Role],
    ) -> Result<Option<User>, StoreError> {
        let Some(before) = self.get_user(id).await? else {
            return Ok(None);
        };
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        let now = now_ms();
        with_pool!(self.db, |pool| {
            let mut tx = pool.begin_exclusive(&self.owners_scope()).await?;
            let owners_before = active_owners!(&mut *tx, self.tenant);
            sqlx::query("DELETE FROM role_bindings WHERE tenant_id = $1 AND user_id = $2")
                .bind(self.tenant.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            for role in &roles {
                sqlx::query(
                    "INSERT INTO role_bindings (tenant_id, user_id, role, created_at_ms) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(self.tenant.as_str())
                .bind(id.as_str())
                .bind(role.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            ensure_an_owner_remains(owners_before, active_owners!(&mut *tx, self.tenant))?;
            let details = json!({ "before": before.roles, "after": roles });
            record_audit!(
                &mut *tx,
                self.tenant.as_str(),
                audit,
                "user.set_roles",
                "user",
                id.as_str(),
                details
            )?;
            tx.commit().await?;
        });
        self.get_user(id).await
    }

    /// The lock scope of changes that can take a tenant's last active owner away.
    fn owners_scope(&self) -> String {
        format!("owners/{}", self.tenant.as_str())
    }

    /// Disables a user and revokes all their API keys. Disabling the last active owner is a
    /// conflict. Disabling a disabled user changes nothing and records nothing.
    pub async fn disable_user(
        &self,
        audit: &AuditContext,
        id: &UserId,
    ) -> Result<Option<User>, StoreError> {
        let Some(user) = self.get_user(id).await? else {
            return Ok(None);
        };
        if user.status == UserStatus::Disabled {
            return Ok(Some(user));
        }
        let now = now_ms();
        with_pool!(self.db, |pool| {
            let mut tx = pool.begin_exclusive(&self.owners_scope()).await?;
            let owners_before = active_owners!(&mut *tx, self.tenant);
            sqlx::query("UPDATE users SET status = 'disabled' WHERE tenant_id = $1 AND id = $2")
                .bind(self.tenant.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            ensure_an_owner_remains(owners_before, active_owners!(&mut *tx, self.tenant))?;
            let revoked = sqlx::query(
                "UPDATE api_keys SET revoked_at_ms = $3 \
                 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at_ms IS NULL",
            )
            .bind(self.tenant.as_str())
            .bind(id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let details = json!({ "revoked_api_keys": revoked });
            record_audit!(
                &mut *tx,
                self.tenant.as_str(),
                audit,
                "user.disable",
                "user",
                id.as_str(),
                details
            )?;
            tx.commit().await?;
        });
        self.get_user(id).await
    }

    /// Stores a new API key for a user of this tenant; `None` when the user is not one.
    pub async fn create_api_key(
        &self,
        audit: &AuditContext,
        key: NewApiKey,
    ) -> Result<Option<ApiKey>, StoreError> {
        if self.get_user(&key.user_id).await?.is_none() {
            return Ok(None);
        }
        let id = new_id("key");
        let scopes = serde_json::to_string(&key.scopes)
            .map_err(|e| StoreError::Corrupt(format!("scopes do not serialize: {e}")))?;
        with_pool!(self.db, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO api_keys (id, tenant_id, user_id, name, prefix, secret_hash, scopes, \
                 created_at_ms, expires_at_ms, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&id)
            .bind(self.tenant.as_str())
            .bind(key.user_id.as_str())
            .bind(&key.name)
            .bind(&key.prefix)
            .bind(&key.secret_hash)
            .bind(&scopes)
            .bind(now_ms())
            .bind(key.expires_at_ms)
            .bind(key.created_by.as_ref().map(UserId::as_str))
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_on_unique(e, "an API key with this prefix exists"))?;
            let details = json!({
                "name": key.name,
                "user_id": key.user_id,
                "prefix": key.prefix,
                "scopes": key.scopes,
                "expires_at_ms": key.expires_at_ms,
                "created_by": key.created_by,
            });
            record_audit!(
                &mut *tx,
                self.tenant.as_str(),
                audit,
                "api_key.create",
                "api_key",
                &id,
                details
            )?;
            tx.commit().await?;
        });
        self.get_api_key(&ApiKeyId::from(id)).await
    }

    /// One page of API keys ordered by id, optionally only one user's.
    pub async fn list_api_keys(
        &self,
        user: Option<&UserId>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 \
             AND ($2 IS NULL OR user_id = $2) AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4"
        );
        let rows: Vec<ApiKeyRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant.as_str())
                .bind(user.map(UserId::as_str))
                .bind(after)
                .bind(page_size(limit))
                .fetch_all(pool)
                .await?
        });
        convert(rows)
    }

    /// One API key of this tenant.
    pub async fn get_api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        let sql =
            format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2");
        let row: Option<ApiKeyRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant.as_str())
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(ApiKey::try_from).transpose()
    }

    /// Revokes an API key. Revoking a revoked key changes nothing and records nothing.
    pub async fn revoke_api_key(
        &self,
        audit: &AuditContext,
        id: &ApiKeyId,
    ) -> Result<Option<ApiKey>, StoreError> {
        let Some(key) = self.get_api_key(id).await? else {
            return Ok(None);
        };
        if key.revoked_at_ms.is_some() {
            return Ok(Some(key));
        }
        with_pool!(self.db, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE api_keys SET revoked_at_ms = $3 \
                 WHERE tenant_id = $1 AND id = $2 AND revoked_at_ms IS NULL",
            )
            .bind(self.tenant.as_str())
            .bind(id.as_str())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            let details = json!({ "prefix": key.prefix });
            record_audit!(
                &mut *tx,
                self.tenant.as_str(),
                audit,
                "api_key.revoke",
                "api_key",
                id.as_str(),
                details
            )?;
            tx.commit().await?;
        });
        self.get_api_key(id).await
    }

    /// Audit events of this tenant, newest first.
    pub async fn list_audit_events(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE tenant_id = $1 \
             AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR resource_type = $3) \
             AND ($4 IS NULL OR resource_id = $4) AND ($5 IS NULL OR actor = $5) \
             AND ($6 IS NULL OR created_at_ms >= $6) AND ($7 IS NULL OR created_at_ms < $7) \
             AND ($8 IS NULL OR id < $8) ORDER BY id DESC LIMIT $9"
        );
        let rows: Vec<AuditRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant.as_str())
                .bind(filter.action.as_deref())
                .bind(filter.resource_type.as_deref())
                .bind(filter.resource_id.as_deref())
                .bind(filter.actor.as_deref())
                .bind(filter.since_ms)
                .bind(filter.until_ms)
                .bind(filter.before_id.as_deref())
                .bind(page_size(filter.limit))
                .fetch_all(pool)
                .await?
        });
        convert(rows)
    }

    /// Everything the tenant owns, read in one transaction so the parts agree.
    pub async fn export(&self) -> Result<Option<TenantExport>, StoreError> {
        let tenant_sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1");
        let users_sql =
            format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY id");
        let keys_sql =
            format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY id");
        let audit_sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE tenant_id = $1 ORDER BY id");
        let t = self.tenant.as_str();
        let (tenant, users, roles, keys, events, namespaces) = with_pool!(self.db, |pool| {
            let mut tx = pool.begin().await?;
            let tenant: Option<TenantRow> = sqlx::query_as(sqlx::AssertSqlSafe(tenant_sql))
                .bind(t)
                .fetch_optional(&mut *tx)
                .await?;
            let users: Vec<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(users_sql))
                .bind(t)
                .fetch_all(&mut *tx)
                .await?;
            let roles: Vec<RoleRow> =
                sqlx::query_as("SELECT user_id, role FROM role_bindings WHERE tenant_id = $1")
                    .bind(t)
                    .fetch_all(&mut *tx)
                    .await?;
            let keys: Vec<ApiKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(keys_sql))
                .bind(t)
                .fetch_all(&mut *tx)
                .await?;
            let events: Vec<AuditRow> = sqlx::query_as(sqlx::AssertSqlSafe(audit_sql))
                .bind(t)
                .fetch_all(&mut *tx)
                .await?;
            let namespaces: Vec<String> = sqlx::query_scalar(
                "SELECT namespace FROM namespaces WHERE tenant_id = $1 ORDER BY namespace",
            )
            .bind(t)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            (tenant, users, roles, keys, events, namespaces)
        });
        let Some(tenant) = tenant else {
            return Ok(None);
        };
        let (skills, skill_versions, installations) = self.export_skills().await?;
        let policy = self
            .policy()
            .await?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("tenant policy: {e}")))?;
        let kv_entries = self.export_kv().await?;
        let secrets = self.export_secrets().await?;
        let tasks = self.export_tasks().await?;
        let agents = self.export_agents().await?;
        Ok(Some(TenantExport {
            kv_entries,
            secrets,
            tasks,
            agents,
            skills,
            skill_versions,
            installations,
            policy,
            tenant: tenant.try_into()?,
            users: users_with_roles(users, roles)?,
            api_keys: convert(keys)?,
            audit_events: convert(events)?,
            namespaces,
        }))
    }
}
