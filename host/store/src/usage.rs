//! Tenant policies (limits and quotas, stored as JSON the server defines) and usage counters
//! per quota period, which the server adds to in batches.

use omniforge_types::TenantId;
use serde::Serialize;
use serde_json::json;

use crate::audit::record_audit;
use crate::database::with_pool;
use crate::error::StoreError;
use crate::platform::Platform;
use crate::records::{AuditContext, now_ms};
use crate::tenant::TenantStore;

/// A tenant's usage in one period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UsageCounters {
    /// Invocations run (every outcome).
    pub invocations: i64,
    /// Fuel consumed.
    pub fuel: i64,
    /// Wall time of invocations, in milliseconds.
    pub wall_ms: i64,
    /// Invocations whose outcome was not `ok`.
    pub failures: i64,
}

/// Usage to add to a tenant's counters of one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    /// The tenant.
    pub tenant: TenantId,
    /// The period, e.g. `2026-11`.
    pub period: String,
    /// What to add.
    pub counters: UsageCounters,
}

impl TenantStore<'_> {
    /// The tenant's counters of `period` (zero when nothing was recorded).
    pub async fn usage(&self, period: &str) -> Result<UsageCounters, StoreError> {
        let row: Option<UsageCounters> = with_pool!(self.db(), |pool| {
            sqlx::query_as(
                "SELECT invocations, fuel, wall_ms, failures FROM usage_counters \
                 WHERE tenant_id = $1 AND period = $2",
            )
            .bind(self.tenant_id().as_str())
            .bind(period)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.unwrap_or_default())
    }

    /// The tenant's policy document, if one was set.
    pub async fn policy(&self) -> Result<Option<String>, StoreError> {
        Ok(with_pool!(self.db(), |pool| {
            sqlx::query_scalar("SELECT policy FROM tenant_policies WHERE tenant_id = $1")
                .bind(self.tenant_id().as_str())
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Replaces the tenant's policy document.
    pub async fn set_policy(&self, audit: &AuditContext, policy: &str) -> Result<(), StoreError> {
        let t = self.tenant_id().as_str();
        with_pool!(self.db(), |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO tenant_policies (tenant_id, policy, updated_at_ms) \
                 VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO UPDATE \
                 SET policy = excluded.policy, updated_at_ms = excluded.updated_at_ms",
            )
            .bind(t)
            .bind(policy)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            let details: serde_json::Value =
                serde_json::from_str(policy).unwrap_or_else(|_| json!(policy));
            record_audit!(&mut *tx, t, audit, "tenant.policy", "tenant", t, details)?;
            tx.commit().await?;
        });
        Ok(())
    }
}

impl Platform<'_> {
    /// Adds a batch of usage to the counters, in one transaction.
    pub async fn add_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError> {
        if deltas.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        with_pool!(self.db(), |pool| {
            let mut tx = pool.begin().await?;
            for delta in deltas {
                let c = &delta.counters;
                sqlx::query(
                    "INSERT INTO usage_counters (tenant_id, period, invocations, fuel, wall_ms, \
                     failures, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (tenant_id, period) DO UPDATE SET \
                     invocations = usage_counters.invocations + excluded.invocations, \
                     fuel = usage_counters.fuel + excluded.fuel, \
                     wall_ms = usage_counters.wall_ms + excluded.wall_ms, \
                     failures = usage_counters.failures + excluded.failures, \
                     updated_at_ms = excluded.updated_at_ms",
                )
                .bind(delta.tenant.as_str())
                .bind(&delta.period)
                .bind(c.invocations)
                .bind(c.fuel)
                .bind(c.wall_ms)
                .bind(c.failures)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}
