//! Platform-level repositories: tenants themselves (managed by platform admins), the first
//! tenant's bootstrap, and the lookups authentication does before it knows the tenant.

use omniforge_types::{ApiKeyId, TenantId, UserId};
use serde_json::json;

use crate::audit::{page_size, record_audit};
use crate::database::{Database, with_pool};
use crate::error::{StoreError, conflict_on_unique};
use crate::records::{
    ApiKey, ApiKeyCredential, AuditContext, NewApiKey, NewUser, Role, Tenant, TenantStatus, User,
    new_id, now_ms,
};
use crate::rows::{API_KEY_COLUMNS, ApiKeyRow, TENANT_COLUMNS, TenantRow};

/// Repositories that are not scoped to one tenant.
#[derive(Debug, Clone, Copy)]
pub struct Platform<'a> {
    db: &'a Database,
}

/// A tenant created with its owner and the owner's first key.
#[derive(Debug)]
pub struct Bootstrapped {
    /// The new tenant.
    pub tenant: Tenant,
    /// Its owner.
    pub owner: User,
    /// The owner's first API key.
    pub api_key: ApiKey,
}

impl Database {
    /// The platform-level repositories.
    pub fn platform(&self) -> Platform<'_> {
        Platform { db: self }
    }
}

impl Platform<'_> {
    pub(crate) fn db(&self) -> &Database {
        self.db
    }

    /// Creates a tenant. A taken slug is a conflict.
    pub async fn create_tenant(
        &self,
        audit: &AuditContext,
        slug: &str,
        name: &str,
    ) -> Result<Tenant, StoreError> {
        let id = new_id("ten");
        let now = now_ms();
        with_pool!(self.db, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO tenants (id, slug, name, status, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, 'active', $4, $4)",
            )
            .bind(&id)
            .bind(slug)
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_on_unique(e, format!("the tenant slug {slug:?} is taken")))?;
            let details = json!({ "slug": slug, "name": name });
            record_audit!(
                &mut *tx,
                &id,
                audit,
                "tenant.create",
                "tenant",
                &id,
                details
            )?;
            tx.commit().await?;
        });
        self.get_tenant(&TenantId::from(id))
            .await?
            .ok_or_else(|| StoreError::Corrupt("a created tenant vanished".into()))
    }

    /// One page of tenants ordered by id.
    pub async fn list_tenants(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Tenant>, StoreError> {
        let sql = format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
        );
        let rows: Vec<TenantRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(after)
                .bind(page_size(limit))
                .fetch_all(pool)
                .await?
        });
        crate::rows::convert(rows)
    }

    /// A tenant by id.
    pub async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        self.db.tenant(id).get().await
    }

    /// The tenant whose slug is `slug`.
    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>, StoreError> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = $1");
        let row: Option<TenantRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(slug)
                .fetch_optional(pool)
                .await?
        });
        row.map(Tenant::try_from).transpose()
    }

    /// Renames a tenant.
    pub async fn rename_tenant(
        &self,
        audit: &AuditContext,
        id: &TenantId,
        name: &str,
    ) -> Result<Option<Tenant>, StoreError> {
        let Some(before) = self.get_tenant(id).await? else {
            return Ok(None);
        };
        if before.name == name {
            return Ok(Some(before));
        }
        with_pool!(self.db, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE tenants SET name = $2, updated_at_ms = $3 WHERE id = $1")
                .bind(id.as_str())
                .bind(name)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            let details = json!({ "before": before.name, "after": name });
            record_audit!(
                &mut *tx,
                id.as_str(),
                audit,
                "tenant.update",
                "tenant",
                id.as_str(),
                details
            )?;
            tx.commit().await?;
        });
        self.get_tenant(id).await
    }

    /// Suspends or resumes a tenant. Setting the status it has changes nothing.
    pub async fn set_tenant_status(
        &self,
        audit: &AuditContext,
        id: &TenantId,
        status: TenantStatus,
    ) -> Result<Option<Tenant>, StoreError> {
        let Some(before) = self.get_tenant(id).await? else {
            return Ok(None);
        };
        if before.status == status {
            return Ok(Some(before));
        }
        let action = match status {
            TenantStatus::Suspended => "tenant.suspend",
            TenantStatus::Active => "tenant.resume",
        };
        with_pool!(self.db, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE tenants SET status = $2, updated_at_ms = $3 WHERE id = $1")
                .bind(id.as_str())
                .bind(status.as_str())
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            record_audit!(
                &mut *tx,
                id.as_str(),
                audit,
                action,
                "tenant",
                id.as_str(),
                json!({})
            )?;
            tx.commit().await?;
        });
        self.get_tenant(id).await
    }

    /// Whether any active platform admin exists.
    pub async fn has_platform_admin(&self) -> Result<bool, StoreError> {
        let count: i64 = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM users WHERE is_platform_admin AND status = 'active'",
            )
            .fetch_one(pool)
            .await?
        });
        Ok(count > 0)
    }

    /// Creates a tenant, its owner and the owner's first API key, all or nothing (as
    /// `omniforge admin bootstrap` and `POST /api/v1/tenants` with an owner do). `key`
    /// receives the owner's id and returns the key to store.
    pub async fn create_tenant_with_owner(
        &self,
        audit: &AuditContext,
        slug: &str,
        name: &str,
        email: &str,
        platform_admin: bool,
        key: impl FnOnce(&UserId) -> NewApiKey,
    ) -> Result<Bootstrapped, StoreError> {
        // Each step writes its own audit event; a failure part-way leaves a tenant without an
        // owner, which is removed again so the command can simply be re-run.
        let tenant = self.create_tenant(audit, slug, name).await?;
        let result = async {
            let scoped = self.db.tenant(&tenant.id);
            let owner = scoped
                .create_user(
                    audit,
                    NewUser {
                        email: email.to_owned(),
                        display_name: String::new(),
                        roles: vec![Role::Owner],
                        is_platform_admin: platform_admin,
                    },
                )
                .await?;
            let api_key = scoped
                .create_api_key(audit, key(&owner.id))
                .await?
                .ok_or_else(|| StoreError::Corrupt("the new owner vanished".into()))?;
            Ok((owner, api_key))
        }
        .await;
        match result {
            Ok((owner, api_key)) => Ok(Bootstrapped {
                tenant,
                owner,
                api_key,
            }),
            Err(error) => {
                self.remove_tenant(&tenant.id).await?;
                Err(error)
            }
        }
    }

    /// Removes a tenant and everything it owns; only for undoing a failed bootstrap.
    async fn remove_tenant(&self, id: &TenantId) -> Result<(), StoreError> {
        with_pool!(self.db, |pool| {
            let mut tx = pool.begin().await?;
            for table in ["api_keys", "role_bindings", "audit_events", "users"] {
                let sql = format!("DELETE FROM {table} WHERE tenant_id = $1");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM tenants WHERE id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The key with this public prefix, with its hash and the state of its user and tenant;
    /// the one lookup that precedes knowing the tenant.
    pub async fn api_key_for_authentication(
        &self,
        prefix: &str,
    ) -> Result<Option<ApiKeyCredential>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct CredentialRow {
            #[sqlx(flatten)]
            key: ApiKeyRow,
            secret_hash: String,
            tenant_status: String,
        }
        let columns = API_KEY_COLUMNS
            .split(", ")
            .map(|c| format!("k.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns}, k.secret_hash, t.status AS tenant_status FROM api_keys k \
             JOIN tenants t ON t.id = k.tenant_id WHERE k.prefix = $1"
        );
        let row: Option<CredentialRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(prefix)
                .fetch_optional(pool)
                .await?
        });
        let Some(CredentialRow {
            key,
            secret_hash,
            tenant_status,
        }) = row
        else {
            return Ok(None);
        };
        let key = ApiKey::try_from(key)?;
        let Some(user) = self
            .db
            .tenant(&key.tenant_id)
            .get_user(&key.user_id)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(ApiKeyCredential {
            key,
            secret_hash,
            user,
            tenant_status: tenant_status
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("tenant: {e}")))?,
        }))
    }

    /// Records that a key was used; not audited (it is not a change anyone made).
    pub async fn touch_api_key(&self, id: &ApiKeyId, at_ms: i64) -> Result<(), StoreError> {
        with_pool!(self.db, |pool| {
            sqlx::query("UPDATE api_keys SET last_used_at_ms = $2 WHERE id = $1")
                .bind(id.as_str())
                .bind(at_ms)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The user a bearer token names: `tenant` is a tenant id or slug, `subject` a user id or
    /// email within it. Returns the user and the tenant's status.
    pub async fn user_for_token(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<Option<(User, TenantStatus)>, StoreError> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1 OR slug = $1");
        let row: Option<TenantRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .fetch_optional(pool)
                .await?
        });
        let Some(tenant) = row.map(Tenant::try_from).transpose()? else {
            return Ok(None);
        };
        let user_id: Option<String> = with_pool!(self.db, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM users WHERE tenant_id = $1 AND (id = $2 OR email = $2)",
            )
            .bind(tenant.id.as_str())
            .bind(subject)
            .fetch_optional(pool)
            .await?
        });
        let Some(user_id) = user_id else {
            return Ok(None);
        };
        let user = self
            .db
            .tenant(&tenant.id)
            .get_user(&UserId::from(user_id))
            .await?;
        Ok(user.map(|u| (u, tenant.status)))
    }
}
