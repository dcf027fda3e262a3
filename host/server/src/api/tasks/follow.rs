//! Following one task's events from the database until its last one: what every stream of
//! a task is made of (`GET /api/v1/tasks/{id}/events`, A2A's `SendStreamingMessage` and
//! `SubscribeToTask`), whatever it turns the events into.
//!
//! The follower reads the database, never memory: it hands on what is stored after a
//! sequence number, then waits for a signal that the task has new events (from this
//! process, or from another replica over PostgreSQL's `NOTIFY`), or a second, and reads
//! again. A follower authenticates its request again every `tasks.stream_recheck_ms` and
//! stops when the credentials no longer hold.

use std::net::IpAddr;
use std::time::Duration;

use axum::http::HeaderMap;
use omniforge_control::metrics::Refusal;
use omniforge_store::{EventKind, TaskEvent, TaskId, TaskState, TenantId};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use crate::app::AppState;
use crate::auth::rbac::Permission;
use crate::error::ApiError;
use crate::slots::{StreamSlot, still_allowed};

/// Events read from the database at once.
pub(crate) const READ_PAGE: u32 = 500;

/// How long a follower (or any wait on a task) goes without a signal before it reads again
/// anyway.
pub(crate) const REREAD: Duration = Duration::from_secs(1);

/// Who reads a stream: its tenant, and the request's headers and address, authenticated
/// again now and then.
pub(crate) struct Reader {
    pub(crate) tenant: TenantId,
    pub(crate) headers: HeaderMap,
    pub(crate) peer: Option<IpAddr>,
}

/// Follows task `id`'s events after `after`, starting with `first` when the caller read
/// them already: the receiver gets them in order until the task's last one, the receiver
/// being dropped, the task being deleted, the reader's credentials no longer allowing
/// `task:read`, or the server stopping. `slot` is held until then.
pub(crate) fn follow(
    app: AppState,
    reader: Reader,
    slot: StreamSlot,
    id: TaskId,
    after: i64,
    first: Option<Vec<TaskEvent>>,
) -> mpsc::Receiver<TaskEvent> {
    let (sender, receiver) = mpsc::channel(64);
    let follower = Follower {
        follow: app.tasks.signals().follow_events(),
        reader,
        sender,
    };
    tokio::spawn(async move {
        // Read after subscribing to the signals, so that no event falls in between.
        let first = match first {
            Some(first) => first,
            None => match app
                .db
                .tenant(&follower.reader.tenant)
                .task_events(&id, after, READ_PAGE)
                .await
            {
                Ok(Some(events)) => events,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(task = %id, "cannot read task events for a stream: {e}");
                    Vec::new()
                }
            },
        };
        follower.follow(app, id, after, first).await;
        drop(slot);
    });
    receiver
}

/// A place for one more stream of the tenant's tasks on this server, or the 429 that says
/// it holds as many as `tasks.streams_per_tenant` allows.
pub(crate) fn admit(app: &AppState, tenant: &TenantId) -> Result<StreamSlot, ApiError> {
    app.task_streams.admit(tenant).ok_or_else(|| {
        app.metrics.refused(Refusal::Streams);
        ApiError::too_many_requests(
            format!(
                "this tenant already holds {} task event streams open on this server",
                app.task_streams.per_tenant()
            ),
            "task_streams",
            Duration::from_secs(1),
        )
    })
}

/// Whether `event` is a task's last: the state event that ends it.
pub(crate) fn is_last(event: &TaskEvent) -> bool {
    #[derive(Deserialize)]
    struct StateData {
        state: TaskState,
    }
    event.kind == EventKind::State
        && serde_json::from_str::<StateData>(event.data.get()).is_ok_and(|d| d.state.is_terminal())
}

struct Follower {
    reader: Reader,
    follow: broadcast::Receiver<TaskId>,
    sender: mpsc::Sender<TaskEvent>,
}

impl Follower {
    async fn follow(
        mut self,
        app: AppState,
        id: TaskId,
        mut after: i64,
        mut events: Vec<TaskEvent>,
    ) {
        let store = app.db.tenant(&self.reader.tenant);
        let every = Duration::from_millis(app.config.tasks.stream_recheck_ms);
        let mut recheck = tokio::time::Instant::now() + every;
        loop {
            let full = events.len() == READ_PAGE as usize;
            for event in events.drain(..) {
                let last = is_last(&event);
                after = event.seq;
                if self.sender.send(event).await.is_err() || last {
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
                    &self.reader.headers,
                    self.reader.peer,
                    &self.reader.tenant,
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
pub(crate) async fn signalled(follow: &mut broadcast::Receiver<TaskId>, id: &TaskId) {
    loop {
        match follow.recv().await {
            Ok(task) if task == *id => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}
