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
    /// Sends `payload` to every replica listening; nothing on SQLite.
    pub async fn notify_tasks(&self, payload: &str) -> Result<(), StoreError> {
        if let Self::Postgres(pool) = self {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(pool)
                .await?;
        }
        Ok(())
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
