//! Wake-ups between the parts that handle tasks, in this process and across replicas.
//!
//! In one process: a submission wakes the claimer (`Notify`), an appended event wakes the
//! streams that follow the task (a broadcast of task ids). Across replicas on PostgreSQL,
//! each signal is also sent with `NOTIFY` (`work`, `events <task>`, `cancel <task>`, tagged
//! with the sender so it ignores its own), and one listener per process turns the others'
//! into the same in-memory signals. A lost signal costs latency, not correctness: the
//! claimer sweeps every second, streams re-read every second, and workers poll for cancels.

use std::sync::Arc;

use omniforge_store::{Database, Task, TaskId};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

/// Signals of one process.
pub struct Signals {
    db: Database,
    origin: String,
    work: Notify,
    events: broadcast::Sender<TaskId>,
    cancels: broadcast::Sender<TaskId>,
}

impl Signals {
    /// Signals sent as `origin` (the process's worker id).
    pub fn new(db: Database, origin: String) -> Self {
        Self {
            db,
            origin,
            work: Notify::new(),
            events: broadcast::channel(4096).0,
            cancels: broadcast::channel(256).0,
        }
    }

    /// A task was queued (or put back): wake a claimer here and on other replicas.
    pub async fn submitted(&self, task: &Task) {
        self.work.notify_one();
        self.events.send(task.id.clone()).ok();
        self.send("work", None).await;
    }

    /// A worker slot freed or work may be waiting: wake this process's claimer.
    pub(crate) fn wake(&self) {
        self.work.notify_one();
    }

    /// Waits for a wake-up of this process's claimer.
    pub(crate) async fn woken(&self) {
        self.work.notified().await;
    }

    /// `task` has new events: wake the streams that follow it, here and elsewhere.
    pub async fn events(&self, task: &TaskId) {
        self.events.send(task.clone()).ok();
        self.send("events", Some(task)).await;
    }

    /// Tasks with new events from now on.
    pub fn follow_events(&self) -> broadcast::Receiver<TaskId> {
        self.events.subscribe()
    }

    /// A running task was asked to cancel and does not run here.
    pub async fn cancel_requested(&self, task: &TaskId) {
        self.send("cancel", Some(task)).await;
    }

    /// Cancels other replicas asked for, from now on.
    pub(crate) fn follow_cancels(&self) -> broadcast::Receiver<TaskId> {
        self.cancels.subscribe()
    }

    async fn send(&self, kind: &str, task: Option<&TaskId>) {
        let payload = match task {
            Some(task) => format!("{} {kind} {task}", self.origin),
            None => format!("{} {kind}", self.origin),
        };
        if let Err(e) = self.db.notify_tasks(&payload).await {
            tracing::warn!("cannot signal other replicas ({kind}): {e}");
        }
    }

    /// Turns other replicas' signals into this process's until `stop`; returns at once on
    /// SQLite. A broken connection is reopened after a second.
    pub(crate) async fn listen(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let mut listener = match self.db.listen_tasks().await {
                Ok(Some(listener)) => listener,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!("cannot listen for other replicas' task signals: {e}");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                    }
                }
            };
            loop {
                let payload = tokio::select! {
                    () = stop.cancelled() => return,
                    payload = listener.recv() => payload,
                };
                match payload {
                    Ok(payload) => self.dispatch(&payload),
                    Err(e) => {
                        tracing::warn!("lost the task signal listener: {e}");
                        break;
                    }
                }
            }
        }
    }

    fn dispatch(&self, payload: &str) {
        let mut parts = payload.split(' ');
        let (Some(origin), Some(kind)) = (parts.next(), parts.next()) else {
            return;
        };
        if origin == self.origin {
            return;
        }
        let task = parts.next().map(TaskId::new);
        match (kind, task) {
            ("work", _) => self.work.notify_one(),
            ("events", Some(task)) => {
                self.events.send(task).ok();
            }
            ("cancel", Some(task)) => {
                self.cancels.send(task).ok();
            }
            _ => {}
        }
    }
}
