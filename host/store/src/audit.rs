//! The audit log: written by every mutation in the mutation's own transaction, so a change
//! without its event cannot be committed.

/// Inserts one audit event through `$conn` (a transaction) into `$tenant`'s log, and when the
/// actor belongs to another tenant (a platform admin), a copy with the full actor into the
/// actor's own tenant's log (`AuditContext::actor_in`). Ids are `aud_` + a UUIDv7: opaque, and
/// ordered by time. Evaluates to `Result<(), sqlx::Error>`.
macro_rules! record_audit {
    ($conn:expr, $tenant:expr, $ctx:expr, $action:expr, $resource_type:expr, $resource_id:expr, $details:expr $(,)?) => {
        async {
            let tenant: &str = $tenant;
            let ctx: &$crate::records::AuditContext = $ctx;
            let details: serde_json::Value = $details;
            let now = $crate::records::now_ms();
            let insert = "INSERT INTO audit_events (id, tenant_id, actor, action, resource_type, \
                 resource_id, request_id, details, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
            sqlx::query(insert)
                .bind($crate::records::new_id("aud"))
                .bind(tenant)
                .bind(ctx.actor_in(tenant))
                .bind($action)
                .bind($resource_type)
                .bind($resource_id)
                .bind(&ctx.request_id)
                .bind(details.to_string())
                .bind(now)
                .execute(&mut *$conn)
                .await?;
            if let Some(own) = ctx.mirror_tenant(tenant) {
                let mut mirrored = details;
                if let serde_json::Value::Object(map) = &mut mirrored {
                    map.insert("in_tenant".into(), serde_json::Value::from(tenant));
                }
                sqlx::query(insert)
                    .bind($crate::records::new_id("aud"))
                    .bind(own.as_str())
                    .bind(&ctx.actor)
                    .bind($action)
                    .bind($resource_type)
                    .bind($resource_id)
                    .bind(&ctx.request_id)
                    .bind(mirrored.to_string())
                    .bind(now)
                    .execute(&mut *$conn)
                    .await?;
            }
            Ok::<(), sqlx::Error>(())
        }
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
