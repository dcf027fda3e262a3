//! `SendStreamingMessage` and `SubscribeToTask`: Server-Sent Events whose every `data:` is
//! a JSON-RPC answer to the request, holding one A2A stream response. The first is the task
//! as it is; then come the run's events as they are stored, mapped by `wire::EventMapper`;
//! the stream closes after the event that ends the run.
//!
//! The events are the run's stored ones, followed from the database: a client that loses
//! the stream subscribes again and reads on from the task's state, on any replica.

use std::convert::Infallible;
use std::time::Duration;

use a2a::{JsonRpcId, JsonRpcResponse, StreamResponse};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use omniforge_store::Task;

use super::rpc::{Call, Refusal};
use super::wire::{EventMapper, OutputMode, wire_task};
use crate::api::tasks::follow::{self, Reader, follow};
use crate::slots::StreamSlot;

/// How often an idle stream sends a comment: under the 5 s read timeout HTTP clients such
/// as the Python SDK's default to, so a long step does not look like a dead connection.
const KEEP_ALIVE: Duration = Duration::from_secs(3);

/// A place for one more stream of the caller's tenant, taken before anything is started for
/// the stream.
pub(super) fn admit(call: &Call) -> Result<StreamSlot, Refusal> {
    Ok(follow::admit(&call.app, &call.principal.tenant)?)
}

/// The stream of `task` for the request `id`, holding `slot` while it is open.
pub(super) fn open(
    call: &Call,
    id: JsonRpcId,
    task: Task,
    mode: OutputMode,
    slot: StreamSlot,
) -> Response {
    let first = answer(&id, None, &StreamResponse::Task(wire_task(&task, mode)));
    if task.state.is_terminal() {
        let once = futures_util::stream::iter([Ok::<_, Infallible>(first)]);
        return Sse::new(once).into_response();
    }
    let reader = Reader {
        tenant: call.principal.tenant.clone(),
        headers: call.headers.clone(),
        peer: call.peer,
    };
    let mut mapper = EventMapper::new(&task, mode);
    let events = follow(
        call.app.clone(),
        reader,
        slot,
        task.id.clone(),
        task.last_seq,
        None,
    );
    let rest = futures_util::stream::unfold(events, |mut events| async move {
        let event = events.recv().await?;
        Some((event, events))
    })
    .filter_map(move |event| {
        let sse = mapper
            .map(&event)
            .map(|response| Ok::<_, Infallible>(answer(&id, Some(event.seq), &response)));
        std::future::ready(sse)
    });
    let stream = futures_util::stream::iter([Ok(first)]).chain(rest);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// One stream response as the SSE event that carries it.
fn answer(id: &JsonRpcId, seq: Option<i64>, response: &StreamResponse) -> Event {
    let result = serde_json::to_value(response).unwrap_or_default();
    let data =
        serde_json::to_string(&JsonRpcResponse::success(id.clone(), result)).unwrap_or_default();
    let event = Event::default().data(data);
    match seq {
        Some(seq) => event.id(seq.to_string()),
        None => event,
    }
}
