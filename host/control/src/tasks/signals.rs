//! Wake-ups between the parts that handle tasks, in this process and across replicas.
//!
//! In one process: a submission wakes the claimer (`Notify`), an appended event wakes the
//! streams that follow the task (a broadcast of task ids). Across replicas on PostgreSQL,
//! each signal is also sent with `NOTIFY` (`work`, `events <task>…`, `cancel <task>…`,
//! tagged with the sender so it ignores its own), and one listener per process turns the
//! others' into the same in-memory signals. Signals sent while a `NOTIFY` is in flight
//! travel together in the next one (the group commit of `batch.rs`): PostgreSQL serialises
//! the commits of notifying transactions, so one `NOTIFY` per signal would bound the whole
//! queue. A lost signal costs latency, not correctness: the claimer sweeps every second,
//! streams re-read every second, and workers poll for cancels.

use std::sync::Arc;

use omniforge_store::{Database, Task, TaskId};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use super::batch::Batcher;

/// Signals gathered into one `NOTIFY` at most.
const SIGNALS_PER_NOTIFY: usize = 1024;

/// A payload stays below PostgreSQL's 8,000-byte limit.
const MAX_PAYLOAD: usize = 7_000;

/// A signal to other replicas.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Signal {
    Work,
    Events(TaskId),
    Cancel(TaskId),
}

/// Signals of one process.
pub struct Signals {
    db: Database,
    origin: String,
    work: Notify,
    events: broadcast::Sender<TaskId>,
    cancels: broadcast::Sender<TaskId>,
    /// Signals on their way to other replicas (`None`: there are none, on SQLite).
    outbox: Option<Batcher<Signal, ()>>,
}

impl Signals {
    /// Signals sent as `origin` (the process's worker id).
    pub fn new(db: Database, origin: String) -> Self {
        let outbox = db.signals_replicas().then(|| {
            let (db, origin) = (db.clone(), origin.clone());
            Batcher::new(SIGNALS_PER_NOTIFY, move |signals: Vec<Signal>| {
                let (db, count) = (db.clone(), signals.len());
                let payloads = payloads(&origin, signals);
                async move {
                    if let Err(e) = db.notify_tasks(&payloads).await {
                        tracing::warn!("cannot signal other replicas: {e}");
                    }
                    vec![(); count]
                }
            })
        });
        Self {
            db,
            origin,
            work: Notify::new(),
            events: broadcast::channel(4096).0,
            cancels: broadcast::channel(256).0,
            outbox,
        }
    }

    /// A task was queued (or put back): wake a claimer here and on other replicas.
    pub fn submitted(&self, task: &Task) {
        self.work.notify_one();
        self.events.send(task.id.clone()).ok();
        self.send(Signal::Work);
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
    pub fn events(&self, task: &TaskId) {
        self.events.send(task.clone()).ok();
        self.send(Signal::Events(task.clone()));
    }

    /// Tasks with new events from now on.
    pub fn follow_events(&self) -> broadcast::Receiver<TaskId> {
        self.events.subscribe()
    }

    /// A running task was asked to cancel and does not run here.
    pub fn cancel_requested(&self, task: &TaskId) {
        self.send(Signal::Cancel(task.clone()));
    }

    /// Cancels other replicas asked for, from now on.
    pub(crate) fn follow_cancels(&self) -> broadcast::Receiver<TaskId> {
        self.cancels.subscribe()
    }

    fn send(&self, signal: Signal) {
        if let Some(outbox) = &self.outbox {
            outbox.send(signal);
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
        let to = match kind {
            "work" => {
                self.work.notify_one();
                return;
            }
            "events" => &self.events,
            "cancel" => &self.cancels,
            _ => return,
        };
        for task in parts.filter(|p| !p.is_empty()) {
            to.send(TaskId::new(task)).ok();
        }
    }
}

/// The `NOTIFY` payloads that carry `signals` from `origin`: one `work` at most, and the
/// tasks of each other kind, each once, in as few payloads as fit.
fn payloads(origin: &str, signals: Vec<Signal>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let (mut events, mut cancels) = (String::new(), String::new());
    let add = |out: &mut Vec<String>, open: &mut String, kind: &str, task: &TaskId| {
        if open.len() + task.as_str().len() + 1 > MAX_PAYLOAD {
            out.push(std::mem::take(open));
        }
        if open.is_empty() {
            *open = format!("{origin} {kind}");
        }
        open.push(' ');
        open.push_str(task.as_str());
    };
    for signal in signals {
        if !seen.insert(signal.clone()) {
            continue;
        }
        match &signal {
            Signal::Work => out.push(format!("{origin} work")),
            Signal::Events(task) => add(&mut out, &mut events, "events", task),
            Signal::Cancel(task) => add(&mut out, &mut cancels, "cancel", task),
        }
    }
    out.extend([events, cancels].into_iter().filter(|p| !p.is_empty()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_each_signal_once_and_stay_under_the_limit() {
        let task = |i: usize| TaskId::new(format!("tsk_{i:026}"));
        let mut signals = vec![Signal::Work, Signal::Cancel(task(1)), Signal::Work];
        signals.extend((0..600).map(|i| Signal::Events(task(i % 400))));
        let payloads = payloads("wrk_a", signals);
        assert_eq!(payloads.iter().filter(|p| *p == "wrk_a work").count(), 1);
        assert!(payloads.contains(&format!("wrk_a cancel {}", task(1))));
        let events: Vec<&str> = payloads
            .iter()
            .filter_map(|p| p.strip_prefix("wrk_a events "))
            .flat_map(|p| p.split(' '))
            .collect();
        assert_eq!(events.len(), 400, "each task once");
        assert!(payloads.len() > 3, "400 ids need more than one payload");
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
    }
}
