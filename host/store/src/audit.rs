//! The audit log: written by every mutation in the mutation's own transaction, so a change
//! without its event cannot be committed.

/// Inserts one audit event through `$conn` (a transaction).
macro_rules! record_audit {
    ($conn:expr, $tenant:expr, $ctx:expr, $action:expr, $resource_type:expr, $resource_id:expr, $details:expr $(,)?) => {
        sqlx::query(
            "INSERT INTO audit_events (tenant_id, actor, action, resource_type, resource_id, \
             request_id, details, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind($tenant)
        .bind(&$ctx.actor)
        .bind($action)
        .bind($resource_type)
        .bind($resource_id)
        .bind(&$ctx.request_id)
        .bind(serde_json::Value::to_string(&$details))
        .bind($crate::records::now_ms())
        .execute($conn)
        .await
    };
}
pub(crate) use record_audit;

/// Largest page any list returns.
pub const MAX_PAGE: u32 = 200;

/// Clamps a requested page size to 1..=[`MAX_PAGE`].
pub(crate) fn page_size(limit: u32) -> i64 {
    i64::from(limit.clamp(1, MAX_PAGE))
}
