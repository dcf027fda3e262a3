//! The journal writes a run makes — a step's start, its end, or an end with the start that
//! follows it — as one statement on PostgreSQL: one round trip and one commit for what
//! would be a transaction of ten round trips.
//!
//! Each statement does what `Platform::write_steps`'s transaction does: the lease check that
//! numbers the events (an `UPDATE … RETURNING` on the run's row, which also locks it), the
//! journal rows, and the events, as data-modifying CTEs that write only when the lease check
//! returned a row. SQLite has no data-modifying CTEs; it keeps the transaction, whose round
//! trips cost nothing in-process.

use std::collections::HashSet;
use std::fmt::Write as _;

use sqlx::PgPool;

use super::steps::{RESTART, StepChange, StepWrite, finished_state};
use crate::error::StoreError;

/// Checks the lease ($1 run, $2 owner) and numbers the events ($3 of them); every other
/// part reads `lease`.
const LEASE: &str = "lease AS (UPDATE tasks SET last_seq = last_seq + $3 \
     WHERE id = $1 AND lease_owner = $2 AND state = 'working' RETURNING last_seq)";

/// A value bound to a statement's next parameter.
enum Arg<'a> {
    Text(&'a str),
    MaybeText(Option<&'a str>),
    Owned(String),
    Int(i64),
}

/// The statement being built: its SQL and its parameters after the first four ($4 is the
/// events' time).
struct Statement<'a> {
    sql: String,
    args: Vec<Arg<'a>>,
}

impl<'a> Statement<'a> {
    /// Adds `arg` as the next parameter; its placeholder.
    fn arg(&mut self, arg: Arg<'a>) -> String {
        self.args.push(arg);
        format!("${}", self.args.len() + 4)
    }
}

/// Writes `changes` in one statement: `Some(false)` when `owner` no longer holds the run
/// (nothing was written), `None` when they need the transaction — writes other than starts
/// and ends, or two of one row, which one statement's CTEs would not see in order (they all
/// read the rows as they were before it).
pub(crate) async fn write_at_once(
    pool: &PgPool,
    id: &str,
    owner: &str,
    changes: &[StepChange],
    now_ms: i64,
) -> Result<Option<bool>, StoreError> {
    let mut rows = HashSet::new();
    if !changes.iter().all(|c| rows.insert(c.write.row())) {
        return Ok(None);
    }
    let mut statement = Statement {
        sql: format!("WITH {LEASE}"),
        args: Vec::new(),
    };
    for (i, change) in changes.iter().enumerate() {
        let Some(cte) = step_sql(&mut statement, &change.write) else {
            return Ok(None);
        };
        let _ = write!(statement.sql, ", s{i} AS ({cte})");
    }
    let events: Vec<_> = changes.iter().filter_map(|c| c.event.as_ref()).collect();
    if !events.is_empty() {
        let mut values = Vec::new();
        for (j, event) in events.iter().enumerate() {
            // The last event takes the run's new last number, the ones before count back.
            let back = statement.arg(Arg::Int((events.len() - 1 - j) as i64));
            let kind = statement.arg(Arg::Text(event.kind.as_str()));
            let data = statement.arg(Arg::Owned(event.data.to_string()));
            values.push(format!("({back}::BIGINT, {kind}::TEXT, {data}::TEXT)"));
        }
        let _ = write!(
            statement.sql,
            ", event AS (INSERT INTO task_events (task_id, seq, kind, data, at_ms) \
             SELECT $1, lease.last_seq - e.back, e.kind, e.data, $4 FROM lease, \
             (VALUES {}) AS e(back, kind, data))",
            values.join(", ")
        );
    }
    statement.sql.push_str(" SELECT last_seq FROM lease");
    let Statement { sql, args } = statement;
    let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(owner)
        .bind(events.len() as i64)
        .bind(now_ms);
    for arg in args {
        query = match arg {
            Arg::Text(text) => query.bind(text),
            Arg::MaybeText(text) => query.bind(text),
            Arg::Owned(text) => query.bind(text),
            Arg::Int(n) => query.bind(n),
        };
    }
    Ok(Some(query.fetch_optional(pool).await?.is_some()))
}

/// The CTE body of a start or an end (`None` for the other writes); it writes only when
/// the lease check returned a row.
fn step_sql<'a>(statement: &mut Statement<'a>, write: &'a StepWrite) -> Option<String> {
    Some(match write {
        StepWrite::Started {
            step,
            item,
            kind,
            attempt,
            at_ms,
        } => {
            let (step, item) = (
                statement.arg(Arg::Text(step)),
                statement.arg(Arg::Text(item)),
            );
            let kind = statement.arg(Arg::Text(kind));
            let attempt = statement.arg(Arg::Int(*attempt));
            let at = statement.arg(Arg::Int(*at_ms));
            format!(
                "INSERT INTO task_steps (task_id, step, item, kind, state, attempt, \
                 started_at_ms) SELECT $1, {step}, {item}, {kind}, 'running', {attempt}, {at} \
                 FROM lease {RESTART}"
            )
        }
        StepWrite::Finished {
            step,
            item,
            output,
            error,
            at_ms,
        } => {
            let state = statement.arg(Arg::Text(finished_state(output.as_deref())));
            let output = statement.arg(Arg::MaybeText(output.as_deref()));
            let error = statement.arg(Arg::MaybeText(error.as_deref()));
            let at = statement.arg(Arg::Int(*at_ms));
            let (step, item) = (
                statement.arg(Arg::Text(step)),
                statement.arg(Arg::Text(item)),
            );
            format!(
                "UPDATE task_steps SET state = {state}, output = {output}, error = {error}, \
                 finished_at_ms = {at}, not_before_ms = NULL \
                 WHERE task_id = $1 AND step = {step} AND item = {item} \
                 AND EXISTS (SELECT 1 FROM lease)"
            )
        }
        StepWrite::ChildStarted { .. } | StepWrite::RetryScheduled { .. } => return None,
    })
}
