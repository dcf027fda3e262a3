//! `GET /api/v1/tasks/{id}/events`: a task's events, as a JSON page or, with `Accept:
//! text/event-stream`, as Server-Sent Events that follow the task until it ends.
//!
//! The stream sends what is stored after the client's `Last-Event-ID` (or `after`) and
//! follows the task from the database (`api::tasks::follow`), so a client that reconnects
//! with the last id it saw gets exactly what it missed, whichever replica it reaches.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{Extensions, HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use omniforge_store::TaskEvent;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::follow::{READ_PAGE, Reader, admit, follow, is_last};
use super::task_id;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson};

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
    let slot = admit(&app, &principal.tenant)?;
    let reader = Reader {
        tenant: principal.tenant,
        headers,
        peer: extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip()),
    };
    let receiver = follow(app, reader, slot, id, after, Some(first));
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = receiver.recv().await?;
        let sse = Event::default()
            .id(event.seq.to_string())
            .event(event.kind.as_str())
            .data(event.data.get());
        Some((Ok::<_, Infallible>(sse), receiver))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
