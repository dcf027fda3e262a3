//! Cache invalidation across replicas over Redis pub/sub: a change is applied to this
//! replica's caches at once, then published; every other replica applies what it receives.
//! Pub/sub delivers to whoever is subscribed at that moment, so a replica whose subscription
//! was cut forgets everything it cached once it is subscribed again ([`Change::Everything`]);
//! while cut off, its caches fall back on `skills.metadata_recheck_ms`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{SharedRedis, Unreachable};
use crate::changes::{Caches, Change, ChangeFeed};

/// What travels on the channel: the change and the replica it came from.
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    from: String,
    change: Change,
}

/// Changes published by this replica to the others, and received from them.
pub struct RedisChanges {
    caches: Caches,
    outbox: mpsc::UnboundedSender<String>,
    replica: String,
}

/// How often a quiet subscription is checked with a ping.
const PING_EVERY: Duration = Duration::from_secs(5);

/// The longest wait between attempts to subscribe again.
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(1);

impl RedisChanges {
    /// A feed over `redis` applying to `caches`; starts the tasks that publish and receive,
    /// which end with `stop`.
    pub fn start(caches: Caches, redis: Arc<SharedRedis>, stop: CancellationToken) -> Self {
        let channel = redis.key("changes", "all");
        let (outbox, queue) = mpsc::unbounded_channel();
        tokio::spawn(publish(Arc::clone(&redis), channel.clone(), queue));
        tokio::spawn(receive(caches.clone(), Arc::clone(&redis), channel, stop));
        Self {
            caches,
            outbox,
            replica: redis.replica().to_owned(),
        }
    }
}

impl ChangeFeed for RedisChanges {
    fn publish(&self, change: Change) {
        self.caches.apply(&change);
        let message = Message {
            from: self.replica.clone(),
            change,
        };
        match serde_json::to_string(&message) {
            // The receiver lives as long as the publishing task, which ends only at shutdown.
            Ok(text) => drop(self.outbox.send(text)),
            Err(e) => tracing::error!("cannot encode a change: {e}"),
        }
    }
}

/// Publishes queued changes, the ones queued meanwhile in one pipeline.
async fn publish(
    redis: Arc<SharedRedis>,
    channel: String,
    mut queue: mpsc::UnboundedReceiver<String>,
) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, 256).await > 0 {
        if let Err(e) = send(&redis, &channel, &batch).await {
            // One more try after Redis's down second: a change seen late beats a change
            // seen only after the caches' recheck interval.
            tokio::time::sleep(super::RETRY_AFTER_FAILURE).await;
            if send(&redis, &channel, &batch).await.is_err() {
                tracing::warn!(
                    changes = batch.len(),
                    "cannot tell the other replicas about changes (they see them after \
                     skills.metadata_recheck_ms): {e}"
                );
            }
        }
        batch.clear();
    }
}

/// Publishes `batch` on `channel` in one pipeline.
async fn send(redis: &SharedRedis, channel: &str, batch: &[String]) -> Result<(), Unreachable> {
    redis
        .run("change publish", |mut conn| {
            let mut pipe = redis::pipe();
            for message in batch {
                pipe.publish(channel, message).ignore();
            }
            async move { pipe.query_async::<()>(&mut conn).await }
        })
        .await
}

/// Applies the changes other replicas publish, subscribing again whenever the subscription
/// breaks.
async fn receive(
    caches: Caches,
    redis: Arc<SharedRedis>,
    channel: String,
    stop: CancellationToken,
) {
    let mut wait = Duration::from_millis(50);
    // Anything cached before the first subscription may have missed a change too.
    let mut may_have_missed = true;
    let mut first = true;
    loop {
        let subscription = async {
            let mut pubsub = redis.client().get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let attempt = tokio::select! {
            () = stop.cancelled() => return,
            attempt = tokio::time::timeout(RESUBSCRIBE_MAX * 2, subscription) => attempt,
        };
        match attempt {
            Ok(Ok(pubsub)) => {
                if may_have_missed {
                    if !first {
                        tracing::info!("subscribed to changes again; forgetting every cached view");
                    }
                    caches.apply(&Change::Everything);
                }
                first = false;
                wait = Duration::from_millis(50);
                // A connection cut without a word (a failover, a NAT's idle timeout) would
                // leave the stream waiting forever: a ping that gets no answer ends it.
                let (mut sink, mut messages) = pubsub.split();
                let mut ping = tokio::time::interval(PING_EVERY);
                ping.tick().await;
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        _ = ping.tick() => {
                            let answered =
                                tokio::time::timeout(PING_EVERY, sink.ping::<redis::Value>()).await;
                            if !matches!(answered, Ok(Ok(_))) {
                                break;
                            }
                            continue;
                        }
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    match serde_json::from_slice::<Message>(message.get_payload_bytes()) {
                        Ok(message) if message.from != redis.replica() => {
                            caches.apply(&message.change);
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!("ignoring a change that does not parse: {e}"),
                    }
                }
                tracing::warn!("the change subscription was cut; subscribing again");
            }
            Ok(Err(e)) => tracing::debug!("cannot subscribe to changes: {e}"),
            Err(_) => tracing::debug!("subscribing to changes timed out"),
        }
        may_have_missed = true;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(RESUBSCRIBE_MAX);
    }
}
