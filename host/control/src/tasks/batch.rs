//! Group commit: writes that arrive together share one transaction.
//!
//! A commit costs a flush to disk (a few milliseconds here) whatever it carries, so a queue
//! that commits each submission, claim and ending alone is bounded by the disk's flush rate,
//! not by its work. A [`Batcher`] gathers items from many callers; while one commit is being
//! flushed the next callers' items wait together, and the next commit carries them all. An
//! idle batcher commits a lone item at once: batching adds no wait of its own, it only uses
//! the wait a commit already imposes.
//!
//! Written here rather than taken from a crate: the crates that batch calls (for inference
//! servers, mostly) wait for a batch to fill or a timer to fire, which would add latency to
//! every lone submission on an idle queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Commit<T, R> = dyn Fn(Vec<T>) -> Pin<Box<dyn Future<Output = Vec<R>> + Send>> + Send + Sync;

/// Gathers items of many callers into batches committed by one function, one batch at a
/// time.
pub(crate) struct Batcher<T, R> {
    shared: Arc<Shared<T, R>>,
}

struct Shared<T, R> {
    queue: Mutex<Queue<T, R>>,
    max: usize,
    commit: Box<Commit<T, R>>,
}

struct Queue<T, R> {
    items: Vec<(T, Option<oneshot::Sender<R>>)>,
    /// A flusher task runs (and will see items pushed now).
    flushing: bool,
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// A batcher committing at most `max` items at once with `commit`, which answers one
    /// result per item, in order.
    pub(crate) fn new<F, Fut>(max: usize, commit: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        Self {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    items: Vec::new(),
                    flushing: false,
                }),
                max: max.max(1),
                commit: Box::new(move |items| Box::pin(commit(items))),
            }),
        }
    }

    /// Commits `item` with whatever else is waiting; its result, or `None` when the commit
    /// did not answer (it panicked).
    pub(crate) async fn call(&self, item: T) -> Option<R> {
        let (reply, answer) = oneshot::channel();
        self.push(item, Some(reply));
        answer.await.ok()
    }

    /// Commits `item` with whatever else is waiting, without waiting for it.
    pub(crate) fn send(&self, item: T) {
        self.push(item, None);
    }

    fn push(&self, item: T, reply: Option<oneshot::Sender<R>>) {
        let start = {
            let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.items.push((item, reply));
            !std::mem::replace(&mut queue.flushing, true)
        };
        if start {
            tokio::spawn(Arc::clone(&self.shared).flush());
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Shared<T, R> {
    /// Commits batches until none is waiting.
    async fn flush(self: Arc<Self>) {
        loop {
            let batch: Vec<_> = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if queue.items.is_empty() {
                    queue.flushing = false;
                    return;
                }
                let take = queue.items.len().min(self.max);
                queue.items.drain(..take).collect()
            };
            let (items, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
            // In a task of its own, so that a panicking commit drops this batch's replies
            // (its callers see `None`) instead of the flusher, which would leave every later
            // item waiting for a flush that never comes.
            let results = tokio::spawn((self.commit)(items)).await.unwrap_or_default();
            for (reply, result) in replies.into_iter().zip(results) {
                if let Some(reply) = reply {
                    reply.send(result).ok();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_waiting_on_a_commit_share_the_next() {
        let commits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&commits);
        let batcher = Arc::new(Batcher::new(64, move |items: Vec<u32>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                items.into_iter().map(|i| i * 2).collect()
            }
        }));
        let calls: Vec<_> = (0..40)
            .map(|i| {
                let batcher = Arc::clone(&batcher);
                tokio::spawn(async move { batcher.call(i).await })
            })
            .collect();
        for (i, call) in (0..).zip(calls) {
            assert_eq!(
                call.await.unwrap(),
                Some(i * 2),
                "each caller gets its own result"
            );
        }
        let commits = commits.load(Ordering::SeqCst);
        assert!(
            (1..=3).contains(&commits),
            "40 concurrent items took {commits} commits"
        );
    }

    #[tokio::test]
    async fn a_lone_item_commits_at_once_and_batches_respect_the_maximum() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&sizes);
        let batcher = Batcher::new(3, move |items: Vec<u32>| {
            seen.lock().unwrap().push(items.len());
            async move { items }
        });
        assert_eq!(batcher.call(7).await, Some(7));
        for i in 0..7 {
            batcher.send(i);
        }
        assert_eq!(batcher.call(99).await, Some(99));
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes[0], 1);
        assert!(sizes.iter().all(|&n| n <= 3), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 9);
    }

    #[tokio::test]
    async fn a_panicking_commit_answers_none_and_later_items_still_commit() {
        let batcher = Batcher::new(8, |items: Vec<u32>| async move {
            assert!(!items.contains(&13), "unlucky");
            items
        });
        assert_eq!(batcher.call(13).await, None);
        assert_eq!(batcher.call(14).await, Some(14));
    }
}
