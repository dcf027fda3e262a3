//! `GET /api/v1/tasks/{id}/events`: a task's events, as a JSON page or, with `Accept:
//! text/event-stream`, as Server-Sent Events that follow the task until it ends.
//!
//! The stream reads the database, never memory: it sends what is stored after the client's
//! `Last-Event-ID` (or `after`), then waits for a signal that the task has new events (from
//! this process, or from another replica over PostgreSQL's `NOTIFY`), or a second, and
//! reads again. So a client that reconnects with the last id it saw gets exactly what it
//! missed, whichever replica it reaches. A stream authenticates its request again every
//! `tasks.stream_recheck_ms` and ends when the credentials no longer hold.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{Extensions, HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use omniforge_store::{EventKind, TaskEvent, TaskId, TaskState, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{broadcast, mpsc};
use utoipa::{IntoParams, ToSchema};

use super::task_id;
use crate::app::AppState;
use crate::auth::Principal;
use crate::auth::rbac::Permission;
use crate::error::{ApiError, ApiJson};
use crate::slots::still_allowed;

/// Events read from the database at once.
const READ_PAGE: u32 = 500;

/// How long a stream waits for a signal before it reads again anyway.
const REREAD: Duration = Duration::from_secs(1);

/// Which events.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events numbered after this (a stream prefers `Last-Event-ID`).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Most events in a JSON page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// One event of a task.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Its number, from 1; the stream's `id:`.
    pub seq: i64,
    /// `state`, `log` or `result`; the stream's `event:`.
    #[serde(rename = "type")]
    #[schema(value_type = String, pattern = "^(state|log|result)$")]
    pub kind: String,
    /// `state`: `{"state", "attempt"?, "reason"?}`; `log`: `{"level", "message"}`; `result`:
    /// `{"output"}` or `{"error"}` (a problem), with `"usage"` when it ran.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// When it happened, unix ms.
    pub at_ms: i64,
}

impl From<TaskEvent> for EventView {
    fn from(event: TaskEvent) -> Self {
        Self {
            seq: event.seq,
            kind: event.kind.as_str().to_owned(),
            data: event.data,
            at_ms: event.at_ms,
        }
    }
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// The events, in order.
    pub items: Vec<EventView>,
    /// Whether the task has ended and `items` holds its last event.
    pub ended: bool,
}

/// A task's events: with `Accept: text/event-stream`, a stream of every event after
/// `Last-Event-ID` that ends after the task's last; otherwise a JSON page after `after`.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/events", tag = "tasks",
    params(("id" = String, Path), EventsQuery,
           ("Last-Event-ID" = Option<String>, Header, description = "Resume a stream after this event")),
    responses((status = 200, description = "The events: JSON, or Server-Sent Events (`id:` the number, `event:` the type, `data:` the JSON data)",
               content((EventPage = "application/json"), (String = "text/event-stream"))),
              (status = 404, description = "No such task in the caller's tenant", body = crate::error::Problem),
              (status = 429, description = "`limit: task_streams`: the tenant holds as many event streams open on this server as `tasks.streams_per_tenant` allows", body = crate::error::Problem)))]
pub async fn events(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Result<Response, ApiError> {
    let id = task_id(&id)?;
    let mut after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request("after: must be 0 or more").with("field", "after"));
    }
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"));
    if !wants_stream {
        let limit = match query.limit {
            None => 100,
            Some(n @ 1..=1000) => n,
            Some(_) => return Err(ApiError::bad_request("limit must be between 1 and 1000")),
        };
        let events = app
            .db
            .tenant(&principal.tenant)
            .task_events(&id, after, limit)
            .await?
            .ok_or_else(|| ApiError::not_found("task"))?;
        let ended = events.last().is_some_and(is_last);
        let items = events.into_iter().map(EventView::from).collect();
        return Ok(ApiJson(EventPage { items, ended }).into_response());
    }
    if let Some(last) = headers.get("last-event-id") {
        after = last
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|n: &i64| *n >= 0)
            .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be an event number"))?;
    }
    // The task must exist now; the first read happens before the stream starts.
    let first = app
        .db
        .tenant(&principal.tenant)
        .task_events(&id, after, READ_PAGE)
        .await?
        .ok_or_else(|| ApiError::not_found("task"))?;
    // A client that already has the last event gets an empty stream that ends at once.
    if first.is_empty() {
        let task = app
            .db
            .tenant(&principal.tenant)
            .task(&id)
            .await?
            .ok_or_else(|| ApiError::not_found("task"))?;
        if task.state.is_terminal() && after >= task.last_seq {
            let ended = futures_util::stream::empty::<Result<Event, Infallible>>();
            return Ok(Sse::new(ended).into_response());
        }
    }
    let slot = app.task_streams.admit(&principal.tenant).ok_or_else(|| {
        ApiError::too_many_requests(
            format!(
                "this tenant already holds {} task event streams open on this server",
                app.task_streams.per_tenant()
            ),
            "task_streams",
            Duration::from_secs(1),
        )
    })?;
    let (sender, receiver) = mpsc::channel(64);
    let follower = Follower {
        tenant: principal.tenant,
        headers,
        peer: extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip()),
        follow: app.tasks.signals().follow_events(),
        sender,
    };
    tokio::spawn(async move {
        follower.follow(app, id, after, first).await;
        // The stream's place is taken until its follower ends.
        drop(slot);
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Whether `event` is a task's last: the state event that ends it.
fn is_last(event: &TaskEvent) -> bool {
    #[derive(Deserialize)]
    struct StateData {
        state: TaskState,
    }
    event.kind == EventKind::State
        && serde_json::from_str::<StateData>(event.data.get()).is_ok_and(|d| d.state.is_terminal())
}

/// What a stream needs to follow its task.
struct Follower {
    tenant: TenantId,
    /// The request's headers and address, authenticated again now and then.
    headers: HeaderMap,
    peer: Option<IpAddr>,
    follow: broadcast::Receiver<TaskId>,
    sender: mpsc::Sender<Event>,
}

impl Follower {
    /// Sends the task's events after `after` (starting with `events`, already read) until
    /// the task's last one, the client leaving, the task being deleted, the credentials no
    /// longer holding, or the server stopping.
    async fn follow(
        mut self,
        app: AppState,
        id: TaskId,
        mut after: i64,
        mut events: Vec<TaskEvent>,
    ) {
        let store = app.db.tenant(&self.tenant);
        let every = Duration::from_millis(app.config.tasks.stream_recheck_ms);
        let mut recheck = tokio::time::Instant::now() + every;
        loop {
            let full = events.len() == READ_PAGE as usize;
            for event in events.drain(..) {
                let last = is_last(&event);
                after = event.seq;
                let sse = Event::default()
                    .id(event.seq.to_string())
                    .event(event.kind.as_str())
                    .data(event.data.get());
                if self.sender.send(sse).await.is_err() || last {
                    return;
                }
            }
            if !full {
                tokio::select! {
                    () = signalled(&mut self.follow, &id) => {}
                    () = tokio::time::sleep(REREAD) => {}
                    () = tokio::time::sleep_until(recheck) => {}
                    () = self.sender.closed() => return,
                    () = app.stopping.cancelled() => return,
                }
            }
            // Checked between reads, so that a task writing pages without pause is no way
            // around it.
            if tokio::time::Instant::now() >= recheck {
                let allowed = still_allowed(
                    &app,
                    &self.headers,
                    self.peer,
                    &self.tenant,
                    Permission::TaskRead,
                )
                .await;
                if !allowed {
                    return;
                }
                recheck = tokio::time::Instant::now() + every;
            }
            events = match store.task_events(&id, after, READ_PAGE).await {
                Ok(Some(events)) => events,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(task = %id, "cannot read task events for a stream: {e}");
                    Vec::new()
                }
            };
        }
    }
}

/// Completes when `id` is signalled to have new events (or signals were missed).
async fn signalled(follow: &mut broadcast::Receiver<TaskId>, id: &TaskId) {
    loop {
        match follow.recv().await {
            Ok(task) if task == *id => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}
