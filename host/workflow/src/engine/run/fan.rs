//! The steps that run others at once: `parallel` (joins, failure policies, a timeout) and
//! `map` (items under a concurrency cap, in input order), and abandoning what a join no
//! longer needs.

use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{Map, Value};

use super::{Flow, Position, Run, Stop, collect_ids, fail, is_enclosing, type_name};
use crate::document::{FailurePolicy, Join, MapStep, ParallelStep, Step};
use crate::engine::{Host, MAX_MAP_ITEMS, StepError, StepState};

impl<H: Host> Run<'_, H> {
    pub(super) async fn parallel(
        &self,
        p: &ParallelStep,
        started_at_ms: u64,
        at: &Position,
    ) -> Flow<Value> {
        // Nothing held back may wait on the branches.
        self.flush().await?;
        let deadline = p.timeout_ms.map(|t| started_at_ms.saturating_add(t));
        let branches: Vec<Position> = p.branches.iter().map(|_| at.branch()).collect();
        let mut running: FuturesUnordered<_> = p
            .branches
            .iter()
            .zip(&branches)
            .enumerate()
            .map(|(i, (branch, position))| async move { (i, self.step(branch, position).await) })
            .collect();
        let needed = match p.join {
            Join::All => p.branches.len(),
            Join::Any => 1,
            Join::Quorum(n) => n as usize,
        };
        let mut outputs: Vec<Option<Value>> = vec![None; p.branches.len()];
        let (mut succeeded, mut settled, mut suspended) = (0, 0, false);
        let mut continued: Vec<usize> = Vec::new();
        let met = loop {
            let next = match self.until(deadline, running.next()).await {
                Some(Some(next)) => next,
                Some(None) => break false,
                None => {
                    drop(running);
                    self.abandon(&p.branches, &branches, at).await;
                    return Err(fail(StepError::timeout(format!(
                        "the branches took longer than {} ms",
                        p.timeout_ms.unwrap_or_default()
                    ))));
                }
            };
            let (i, result) = next;
            settled += 1;
            match result {
                Ok(output) => {
                    outputs[i] = Some(output);
                    succeeded += 1;
                    if p.join != Join::All && succeeded >= needed {
                        break true;
                    }
                }
                Err(Stop::Failed(error)) => match p.on_failure {
                    FailurePolicy::FailFast => {
                        drop(running);
                        self.abandon(&p.branches, &branches, at).await;
                        return Err(Stop::Failed(error));
                    }
                    FailurePolicy::Continue => continued.push(i),
                    FailurePolicy::Drop => {}
                },
                Err(Stop::Suspend) => suspended = true,
                Err(Stop::Canceled) => return Err(Stop::Canceled),
                Err(Stop::Host(e)) => return Err(Stop::Host(e)),
            }
            let open = p.branches.len() - settled;
            if !suspended && p.join != Join::All && succeeded + open < needed {
                drop(running);
                self.abandon(&p.branches, &branches, at).await;
                return Err(fail(StepError::new(
                    "join",
                    format!(
                        "{succeeded} of {} branches succeeded; the join needs {needed}",
                        p.branches.len()
                    ),
                )));
            }
        };
        drop(running);
        if met {
            self.abandon(&p.branches, &branches, at).await;
        } else if suspended {
            return Err(Stop::Suspend);
        }
        let mut object = Map::new();
        for (i, branch) in p.branches.iter().enumerate() {
            match &outputs[i] {
                Some(output) => {
                    object.insert(branch.id().to_owned(), output.clone());
                }
                None if continued.contains(&i) => {
                    object.insert(branch.id().to_owned(), Value::Null);
                }
                None => {}
            }
        }
        Ok(Value::Object(object))
    }

    /// Waits for `future` until `deadline` (unix ms): `None` when the deadline came first.
    async fn until<F: Future>(&self, deadline: Option<u64>, future: F) -> Option<F::Output> {
        match deadline {
            None => Some(future.await),
            Some(deadline) => {
                let left = deadline.saturating_sub(self.host.now_ms());
                tokio::time::timeout(Duration::from_millis(left), future)
                    .await
                    .ok()
            }
        }
    }

    /// Stops the branches whose results are no longer wanted, and the child runs they
    /// started.
    async fn abandon(&self, steps: &[Step], branches: &[Position], at: &Position) {
        for position in branches {
            position.cancel.cancel();
        }
        let mut ids = std::collections::HashSet::new();
        for step in steps {
            collect_ids(step, &mut ids);
        }
        let children: Vec<String> = self
            .lock()
            .records
            .iter()
            .filter(|(key, r)| {
                r.state == StepState::Running
                    && ids.contains(key.step.as_str())
                    && is_enclosing(&at.item, &key.item)
            })
            .filter_map(|(_, r)| r.child.clone())
            .collect();
        for child in children {
            self.host.cancel_child(&child).await;
        }
    }

    pub(super) async fn map(&self, m: &MapStep, started_at_ms: u64, at: &Position) -> Flow<Value> {
        self.flush().await?;
        let deadline = m.timeout_ms.map(|t| started_at_ms.saturating_add(t));
        let expression = self
            .plan
            .compiled(&m.id)
            .and_then(|c| c.over.as_ref())
            .ok_or_else(|| fail(StepError::expression("the map has no array")))?;
        let over = self
            .with_variables(at, |variables| expression.evaluate(variables))
            .map_err(|e| fail(StepError::expression(e)))?;
        let Value::Array(items) = over else {
            return Err(fail(StepError::expression(format!(
                "`over` gave {}, not an array",
                type_name(&over)
            ))));
        };
        if items.len() > MAX_MAP_ITEMS {
            return Err(fail(StepError::new(
                "limit",
                format!(
                    "`over` gave {} items; a map runs at most {MAX_MAP_ITEMS}",
                    items.len()
                ),
            )));
        }
        let positions: Vec<Position> = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| Position {
                item: if at.item.is_empty() {
                    i.to_string()
                } else {
                    format!("{}.{i}", at.item)
                },
                map_item: Some((item, i as u64)),
                cancel: at.cancel.child_token(),
                alone: false,
            })
            .collect();
        let mut outputs: Vec<Option<Value>> = vec![None; positions.len()];
        let mut pending = positions.iter().enumerate();
        let mut running = FuturesUnordered::new();
        let concurrency = m.concurrency.max(1) as usize;
        let mut suspended = false;
        loop {
            while running.len() < concurrency {
                let Some((i, position)) = pending.next() else {
                    break;
                };
                running.push(async move { (i, self.step(&m.step, position).await) });
            }
            let next = match self.until(deadline, running.next()).await {
                Some(Some(next)) => next,
                Some(None) => break,
                None => {
                    drop(running);
                    self.abandon_items(m, &positions).await;
                    return Err(fail(StepError::timeout(format!(
                        "the items took longer than {} ms",
                        m.timeout_ms.unwrap_or_default()
                    ))));
                }
            };
            match next {
                (i, Ok(output)) => outputs[i] = Some(output),
                (_, Err(Stop::Failed(error))) => {
                    drop(running);
                    self.abandon_items(m, &positions).await;
                    return Err(Stop::Failed(error));
                }
                (_, Err(Stop::Suspend)) => suspended = true,
                (_, Err(other)) => return Err(other),
            }
        }
        if suspended || outputs.iter().any(Option::is_none) {
            return Err(Stop::Suspend);
        }
        Ok(Value::Array(outputs.into_iter().flatten().collect()))
    }

    async fn abandon_items(&self, m: &MapStep, positions: &[Position]) {
        for position in positions {
            position.cancel.cancel();
            self.abandon(std::slice::from_ref(&*m.step), &[], position)
                .await;
        }
    }
}
