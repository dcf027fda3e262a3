//! Telling other replicas about tasks: PostgreSQL's `LISTEN`/`NOTIFY` on one channel. SQLite
//! has one process, which tells itself in memory, so there this is a no-op.

use sqlx::postgres::PgListener;

use crate::database::Database;
use crate::error::StoreError;

/// The channel task signals travel on.
const CHANNEL: &str = "omniforge_tasks";

/// Receives the task signals every replica sends (its own included).
pub struct TaskListener(PgListener);

impl TaskListener {
    /// The next signal's payload. After an error the listener reconnects on the next call
    /// (signals sent meanwhile are lost; the sweep and polling cover them).
    pub async fn recv(&mut self) -> Result<String, StoreError> {
        Ok(self.0.recv().await?.payload().to_owned())
    }
}

impl Database {
    /// Sends `payloads` to every replica listening, in one statement; nothing on SQLite.
    ///
    /// A notifying transaction takes a lock every notifying transaction of the database
    /// shares until its commit is flushed, so callers send what they have in batches
    /// rather than one signal per statement.
    pub async fn notify_tasks(&self, payloads: &[String]) -> Result<(), StoreError> {
        if let Self::Postgres(pool) = self
            && !payloads.is_empty()
        {
            sqlx::query("SELECT pg_notify($1, payload) FROM UNNEST($2::TEXT[]) AS payload")
                .bind(CHANNEL)
                .bind(payloads)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Whether [`Database::notify_tasks`] reaches anyone (PostgreSQL).
    pub fn signals_replicas(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// A listener for the signals of [`Database::notify_tasks`]; `None` on SQLite.
    pub async fn listen_tasks(&self) -> Result<Option<TaskListener>, StoreError> {
        let Self::Postgres(pool) = self else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(TaskListener(listener)))
    }
}
