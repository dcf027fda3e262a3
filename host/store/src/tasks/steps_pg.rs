//! The journal writes every step makes — its start and its end — as one statement on
//! PostgreSQL, so a step costs two round trips and two commits rather than ten round trips.
//!
//! Each statement does what `Platform::write_step`'s transaction does: the lease check that
//! numbers the event (an `UPDATE … RETURNING` on the run's row, which also locks it), the
//! journal row, and the event, as data-modifying CTEs that write only when the lease check
//! returned a row. SQLite has no data-modifying CTEs; it keeps the transaction, whose round
//! trips cost nothing in-process.

use sqlx::PgPool;

use super::NewEvent;
use super::steps::{RESTART, StepWrite, finished_state};
use crate::error::StoreError;

/// Checks the lease and numbers the event; every other part reads `lease`.
const LEASE: &str = "lease AS (UPDATE tasks SET last_seq = last_seq + $3 \
     WHERE id = $1 AND lease_owner = $2 AND state = 'working' RETURNING last_seq)";

/// Appends the event ($4 kind, $5 data, $6 time) when there is one.
const EVENT: &str = "event AS (INSERT INTO task_events (task_id, seq, kind, data, at_ms) \
     SELECT $1, last_seq, $4::TEXT, $5::TEXT, $6 FROM lease WHERE $4::TEXT IS NOT NULL)";

/// Writes a step's start or end in one statement: `Some(false)` when `owner` no longer
/// holds the run (nothing was written), `None` for the other writes, which take the
/// transaction.
pub(crate) async fn write_at_once(
    pool: &PgPool,
    id: &str,
    owner: &str,
    write: &StepWrite,
    event: Option<&NewEvent>,
    now_ms: i64,
) -> Result<Option<bool>, StoreError> {
    let (kind, data) = match event {
        Some(event) => (Some(event.kind.as_str()), Some(event.data.to_string())),
        None => (None, None),
    };
    let query = |step_sql: &str| {
        format!("WITH {LEASE}, step AS ({step_sql}), {EVENT} SELECT last_seq FROM lease")
    };
    let sql = match write {
        StepWrite::Started { .. } => query(&format!(
            "INSERT INTO task_steps (task_id, step, item, kind, state, attempt, \
             started_at_ms) SELECT $1, $7, $8, $9, 'running', $10, $11 FROM lease {RESTART}"
        )),
        StepWrite::Finished { .. } => query(
            "UPDATE task_steps SET state = $9, output = $10, error = $11, \
             finished_at_ms = $12, not_before_ms = NULL \
             WHERE task_id = $1 AND step = $7 AND item = $8 AND EXISTS (SELECT 1 FROM lease)",
        ),
        _ => return Ok(None),
    };
    let statement = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(owner)
        .bind(i64::from(event.is_some()))
        .bind(kind)
        .bind(data)
        .bind(now_ms);
    let statement = match write {
        StepWrite::Started {
            step,
            item,
            kind,
            attempt,
            at_ms,
        } => statement
            .bind(step)
            .bind(item)
            .bind(*kind)
            .bind(*attempt)
            .bind(*at_ms),
        StepWrite::Finished {
            step,
            item,
            output,
            error,
            at_ms,
        } => statement
            .bind(step)
            .bind(item)
            .bind(finished_state(output.as_deref()))
            .bind(output)
            .bind(error)
            .bind(*at_ms),
        _ => return Ok(None),
    };
    Ok(Some(statement.fetch_optional(pool).await?.is_some()))
}
