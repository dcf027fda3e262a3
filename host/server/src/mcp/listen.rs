//! `subscriptions/listen` (MCP 2026-07-28): a stream on which a client is told
//! `notifications/tools/list_changed` whenever the skills its tenant can invoke may have
//! changed: one of its own skills is published, updated, yanked or deleted, it installs or
//! removes a skill, or a skill it installed changes.
//!
//! The stream follows the changes this process's caches apply ([`Applied`]), so with a
//! shared change feed (step 12) it hears about changes made through any replica. A stream
//! lives as long as the client keeps it: it is bounded instead by a number per tenant
//! (`mcp.listeners_per_tenant`), by credentials checked again every
//! `mcp.listen_recheck_ms`, and by shutdown, which ends it with the protocol's final result
//! so that its connection can close.
//!
//! [`Applied`]: omniforge_control::changes::Applied

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use omniforge_control::Change;
use omniforge_store::{MAX_PAGE, TenantId};
use omniforge_types::SkillName;
use rmcp::ErrorData;
use rmcp::service::SubscriptionContext;
use tokio::sync::broadcast::error::RecvError;

use super::{Caller, internal};
use crate::app::AppState;
use crate::auth::rbac::Permission;
use crate::router::check_rate;
use crate::slots::{StreamSlots, still_allowed};

/// Serves one acknowledged `subscriptions/listen` until the client goes away, its
/// credentials stop holding, or the server stops.
pub(crate) async fn listen(
    app: &AppState,
    listeners: &Arc<StreamSlots>,
    cx: SubscriptionContext,
) -> Result<(), ErrorData> {
    if cx.accepted().tools_list_changed != Some(true) {
        // Nothing asked for that this server sends: nothing to hold a stream open for.
        return Ok(());
    }
    let caller = Caller::of(cx.request_context())?;
    check_rate(app, &caller.principal)
        .await
        .map_err(|e| ErrorData::invalid_request(e.message(), None))?;
    caller.require(Permission::SkillRead)?;
    let tenant = caller.principal.tenant.clone();
    let _slot = listeners.admit(&tenant).ok_or_else(|| {
        ErrorData::invalid_request(
            format!(
                "this tenant already holds {} open change streams on this server; close one \
                 before opening another",
                listeners.per_tenant()
            ),
            None,
        )
    })?;
    // Followed before the installations are read: a change in between is heard, not lost.
    let mut changes = app.invocations.follow_changes();
    let mut installed = installed_skills(app, &tenant).await?;
    let mut recheck =
        tokio::time::interval(Duration::from_millis(app.config.mcp.listen_recheck_ms));
    recheck.tick().await;
    loop {
        tokio::select! {
            () = cx.cancelled() => return Ok(()),
            () = app.stopping.cancelled() => return Ok(()),
            _ = recheck.tick() => credentials_hold(app, cx.request_context().extensions.get::<Parts>(), &tenant).await?,
            change = changes.recv() => {
                let tell = match change {
                    Ok(change) => {
                        let relevant =
                            change.touches_skills_of(&tenant, |skill| installed.contains(skill));
                        if matches!(&change, Change::Installation { .. }) && relevant {
                            installed = installed_skills(app, &tenant).await?;
                        }
                        relevant
                    }
                    // Fell behind: anything may have changed.
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return Ok(()),
                };
                if tell && cx.sink().notify_tool_list_changed().await.is_err() {
                    // The client is gone.
                    return Ok(());
                }
            }
        }
    }
}

/// The skills `tenant` has installed, read again whenever its installations change.
async fn installed_skills(
    app: &AppState,
    tenant: &TenantId,
) -> Result<HashSet<SkillName>, ErrorData> {
    let store = app.db.tenant(tenant);
    let mut skills = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        // Until an empty page: the store decides how many a page holds.
        let page = store
            .list_installations(after.as_deref(), MAX_PAGE)
            .await
            .map_err(|e| internal(&e))?;
        let Some(last) = page.last() else {
            return Ok(skills);
        };
        after = Some(last.id.clone());
        skills.extend(page.into_iter().map(|i| i.skill));
    }
}

/// Authenticates the stream's request again ([`still_allowed`]): credentials that no
/// longer hold end the stream.
async fn credentials_hold(
    app: &AppState,
    parts: Option<&Parts>,
    tenant: &TenantId,
) -> Result<(), ErrorData> {
    let allowed = match parts {
        Some(parts) => {
            let peer = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip());
            still_allowed(app, &parts.headers, peer, tenant, Permission::SkillRead).await
        }
        None => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(ErrorData::invalid_request(
            "the credentials this stream was opened with no longer allow it; listen again with \
             valid ones",
            None,
        ))
    }
}
