//! The engine against a host in memory: skills are closures over their input, the journal
//! is a list of entries, and a "crash" is a write that fails.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::document::RetryOn;
use crate::parse::{Format, plan};

/// A host whose skills are built in:
/// - `t/echo` answers its input; `t/slow` does too, after `input.ms` ms;
/// - `t/add` answers `input.a + input.b`;
/// - `t/flaky` fails `unavailable` the first `input.fails` times per step and item;
/// - `t/bad` answers `invalid-input`.
#[derive(Default)]
struct Memory {
    entries: Mutex<Vec<Entry>>,
    calls: Mutex<HashMap<StepKey, u32>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// The entry with this number (from 1) fails to be written, and the entries written
    /// with it, as a crash would stop them.
    fail_write: Mutex<Option<usize>>,
    /// How many entries each call to `record` wrote.
    batches: Mutex<Vec<usize>>,
    children: Mutex<HashMap<String, Option<Result<Value, StepError>>>>,
    canceled_children: Mutex<Vec<String>>,
}

impl Memory {
    fn journal(&self) -> Journal {
        let mut journal = Journal::default();
        for entry in self.entries.lock().unwrap().iter() {
            journal.apply(entry);
        }
        journal
    }

    fn calls(&self, step: &str) -> u32 {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.step == step)
            .map(|(_, n)| n)
            .sum()
    }

    fn retries(&self) -> Vec<(u32, u64)> {
        self.entries
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Entry::RetryScheduled {
                    attempt,
                    not_before_ms,
                    ..
                } => Some((*attempt, *not_before_ms)),
                _ => None,
            })
            .collect()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

impl Host for Memory {
    fn now_ms(&self) -> u64 {
        now()
    }

    fn jitter(&self) -> f64 {
        0.5
    }

    async fn record(&self, batch: &[Entry]) -> Result<(), HostError> {
        let mut entries = self.entries.lock().unwrap();
        let numbers = entries.len() + 1..=entries.len() + batch.len();
        if self
            .fail_write
            .lock()
            .unwrap()
            .is_some_and(|n| numbers.contains(&n))
        {
            return Err(HostError("the database went away".into()));
        }
        entries.extend_from_slice(batch);
        self.batches.lock().unwrap().push(batch.len());
        Ok(())
    }

    async fn invoke(&self, call: SkillCall) -> Result<Value, StepError> {
        let count = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(call.key.clone()).or_default();
            *n += 1;
            *n
        };
        let now_in = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now_in, Ordering::SeqCst);
        let answer = match call.skill.as_str() {
            "t/echo" => Ok(call.input.clone()),
            "t/slow" => {
                let ms = call.input["ms"].as_u64().unwrap_or(0);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(call.input.clone()),
                    () = call.cancel.cancelled() => Err(StepError::new("canceled", "canceled")),
                }
            }
            "t/add" => Ok(json!(
                call.input["a"].as_i64().unwrap() + call.input["b"].as_i64().unwrap()
            )),
            "t/flaky" if count <= call.input["fails"].as_u64().unwrap() as u32 => {
                Err(StepError::new("unavailable", "try later").retried_as(RetryOn::Unavailable))
            }
            "t/flaky" => Ok(json!({"attempt": call.attempt})),
            "t/bad" => Err(StepError::new("invalid-input", "no")),
            other => Err(StepError::new("not-found", format!("no skill {other}"))),
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        answer
    }

    async fn start_child(&self, call: ChildCall) -> Result<String, StepError> {
        let id = format!("run-{}-{}", call.key, call.attempt);
        self.children
            .lock()
            .unwrap()
            .entry(id.clone())
            .or_insert(None);
        Ok(id)
    }

    async fn child_result(
        &self,
        child: &str,
    ) -> Result<Option<Result<Value, StepError>>, HostError> {
        Ok(self.children.lock().unwrap().get(child).cloned().flatten())
    }

    async fn cancel_child(&self, child: &str) {
        self.canceled_children
            .lock()
            .unwrap()
            .push(child.to_owned());
    }
}

async fn go(document: Value, input: Value, host: &Memory) -> RunEnd {
    let plan = plan(&document.to_string(), Format::Json).unwrap();
    run(
        &plan,
        &input,
        host.journal(),
        host,
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

fn skill(id: &str, name: &str, input: Value) -> Value {
    json!({"id": id, "kind": "skill", "skill": name, "input": input})
}

#[tokio::test]
async fn every_step_kind_runs_and_passes_data_on() {
    let host = Memory::default();
    let document = json!({"steps": [
        skill("first", "t/add", json!({"a": "${input.n}", "b": 1})),
        {"id": "both", "kind": "parallel", "branches": [
            skill("left", "t/add", json!({"a": "${steps.first.output}", "b": 10})),
            {"id": "right", "kind": "sequence", "steps": [
                skill("r1", "t/echo", json!("${steps.first.output * 2}")),
                skill("r2", "t/add", json!({"a": "${steps.r1.output}", "b": 100})),
            ]},
        ]},
        {"id": "each", "kind": "map", "over": "[1, 2, 3]", "concurrency": 2,
         "step": skill("square", "t/add", json!({"a": "${item * item}", "b": "${index}"}))},
        {"id": "pick", "kind": "switch", "cases": [
            {"when": "steps.left.output > 100", "step": skill("big", "t/echo", json!("big"))},
            {"when": "steps.left.output > 10", "step": skill("mid", "t/echo", json!("mid"))},
        ], "default": skill("small", "t/echo", json!("small"))},
        {"id": "child", "kind": "agent", "agent": "helper", "input": {"x": 1}},
    ], "output": {"both": "${steps.both.output}", "each": "${steps.each.output}",
                  "pick": "${steps.pick.output}", "child": "${steps.child.output}"}});

    // The agent step starts its child and waits for it, holding nothing.
    let RunEnd::Suspended(wake) = go(document.clone(), json!({"n": 2}), &host).await else {
        panic!("the run should wait for its child");
    };
    assert_eq!(wake.children, ["run-child-1"]);
    assert_eq!(wake.at_ms, None);
    host.children
        .lock()
        .unwrap()
        .insert("run-child-1".into(), Some(Ok(json!({"done": true}))));

    let end = go(document, json!({"n": 2}), &host).await;
    assert_eq!(
        end,
        RunEnd::Completed(json!({
            "both": {"left": 13, "right": 106},
            "each": [1, 5, 11],
            "pick": "mid",
            "child": {"done": true},
        }))
    );
    // The second call replayed the journal: no skill ran twice.
    for step in ["first", "left", "r1", "r2", "mid"] {
        assert_eq!(host.calls(step), 1, "{step}");
    }
    assert_eq!(host.calls("square"), 3);
    assert_eq!(host.calls("big") + host.calls("small"), 0);
}

fn parallel(join: Value, on_failure: &str, branches: Vec<Value>) -> Value {
    json!({"steps": [{"id": "p", "kind": "parallel", "join": join, "on_failure": on_failure,
                      "branches": branches}]})
}

#[tokio::test]
async fn parallel_joins_and_failure_policies() {
    let slow = |id: &str, ms: u64| skill(id, "t/slow", json!({"ms": ms, "id": id}));

    // any: the first success wins and the rest are abandoned.
    let host = Memory::default();
    let end = go(
        parallel(
            json!("any"),
            "fail-fast",
            vec![slow("a", 2000), slow("b", 10)],
        ),
        json!({}),
        &host,
    )
    .await;
    assert_eq!(end, RunEnd::Completed(json!({"b": {"ms": 10, "id": "b"}})));

    // quorum 2 of 3.
    let host = Memory::default();
    let end = go(
        parallel(
            json!({"quorum": 2}),
            "fail-fast",
            vec![slow("a", 5), slow("b", 3000), slow("c", 20)],
        ),
        json!({}),
        &host,
    )
    .await;
    let RunEnd::Completed(Value::Object(out)) = end else {
        panic!("{end:?}")
    };
    assert_eq!(out.keys().collect::<Vec<_>>(), ["a", "c"]);

    // fail-fast: one failure fails the step and names where.
    let host = Memory::default();
    let end = go(
        parallel(
            json!("all"),
            "fail-fast",
            vec![slow("a", 3000), skill("bad", "t/bad", json!({}))],
        ),
        json!({}),
        &host,
    )
    .await;
    let RunEnd::Failed(error) = end else {
        panic!("{end:?}")
    };
    assert_eq!(
        (error.code.as_str(), error.step.as_deref()),
        ("invalid-input", Some("bad"))
    );

    // continue: the failure is recorded and readable; drop: the branch is left out.
    let host = Memory::default();
    let mut document = parallel(
        json!("all"),
        "continue",
        vec![slow("a", 1), skill("bad", "t/bad", json!({}))],
    );
    document["steps"].as_array_mut().unwrap().push(skill(
        "after",
        "t/echo",
        json!("${steps.bad.error.code}"),
    ));
    document["output"] = json!(["${steps.p.output}", "${steps.after.output}"]);
    let end = go(document, json!({}), &host).await;
    assert_eq!(
        end,
        RunEnd::Completed(json!([{"a": {"ms": 1, "id": "a"}, "bad": null}, "invalid-input"]))
    );
    let host = Memory::default();
    let end = go(
        parallel(
            json!("all"),
            "drop",
            vec![slow("a", 1), skill("bad", "t/bad", json!({}))],
        ),
        json!({}),
        &host,
    )
    .await;
    assert_eq!(end, RunEnd::Completed(json!({"a": {"ms": 1, "id": "a"}})));

    // A quorum that can no longer be met fails at once.
    let host = Memory::default();
    let end = go(
        parallel(
            json!({"quorum": 2}),
            "drop",
            vec![
                skill("x", "t/bad", json!({})),
                skill("y", "t/bad", json!({})),
                slow("z", 3000),
            ],
        ),
        json!({}),
        &host,
    )
    .await;
    assert!(
        matches!(end, RunEnd::Failed(ref e) if e.code == "join"),
        "{end:?}"
    );
}

#[tokio::test]
async fn a_parallel_step_times_out() {
    let host = Memory::default();
    let mut document = parallel(
        json!("all"),
        "fail-fast",
        vec![skill("a", "t/slow", json!({"ms": 5000}))],
    );
    document["steps"][0]["timeout_ms"] = json!(50);
    let end = go(document, json!({}), &host).await;
    assert!(
        matches!(end, RunEnd::Failed(ref e) if e.code == "timeout" && e.step.as_deref() == Some("p")),
        "{end:?}"
    );
}

#[tokio::test]
async fn a_map_keeps_input_order_within_its_concurrency() {
    let host = Memory::default();
    let document = json!({"steps": [{"id": "m", "kind": "map", "over": "input.items",
        "concurrency": 8,
        "step": skill("s", "t/slow", json!({"ms": "${(item * 7) % 5}", "i": "${item}"}))}],
        "output": "${steps.m.output.map(x, x.i)}"});
    let items: Vec<i64> = (0..100).collect();
    let end = go(document, json!({"items": items}), &host).await;
    assert_eq!(end, RunEnd::Completed(json!(items)));
    assert_eq!(host.calls("s"), 100);
    let most = host.most_in_flight.load(Ordering::SeqCst);
    assert!((2..=8).contains(&most), "at most 8 at once, ran {most}");
}

#[tokio::test]
async fn retries_wait_on_durable_timers_and_invalid_input_is_not_retried() {
    let host = Memory::default();
    let document = json!({"steps": [{"id": "f", "kind": "skill", "skill": "t/flaky",
        "input": {"fails": 2},
        "retry": {"max_attempts": 3, "initial_delay_ms": 40, "multiplier": 2}}]});
    let mut wakes = Vec::new();
    let end = loop {
        match go(document.clone(), json!({}), &host).await {
            RunEnd::Suspended(wake) => {
                let at = wake.at_ms.unwrap();
                wakes.push(at);
                // Run again too early first: it suspends again until the same time.
                assert_eq!(
                    go(document.clone(), json!({}), &host).await,
                    RunEnd::Suspended(Wake {
                        at_ms: Some(at),
                        children: vec![]
                    })
                );
                tokio::time::sleep(Duration::from_millis(at.saturating_sub(now()) + 1)).await;
            }
            end => break end,
        }
    };
    assert_eq!(end, RunEnd::Completed(json!({"attempt": 3})));
    assert_eq!(host.calls("f"), 3);
    // Full jitter at 0.5 of the bound: 20 ms after attempt 1, 40 ms after attempt 2.
    let retries = host.retries();
    assert_eq!(retries.iter().map(|r| r.0).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(wakes, retries.iter().map(|r| r.1).collect::<Vec<_>>());

    let host = Memory::default();
    let document = json!({"steps": [{"id": "b", "kind": "skill", "skill": "t/bad",
        "retry": {"max_attempts": 5, "retry_on": ["timeout", "trap", "unavailable", "failed"]}}]});
    let end = go(document, json!({}), &host).await;
    assert!(matches!(end, RunEnd::Failed(ref e) if e.code == "invalid-input"));
    assert_eq!(host.calls("b"), 1);
}

#[tokio::test]
async fn a_run_stopped_by_a_failed_write_resumes_without_rerunning_finished_steps() {
    let document = json!({"steps": [
        skill("s1", "t/add", json!({"a": 1, "b": 1})),
        skill("s2", "t/add", json!({"a": "${steps.s1.output}", "b": 1})),
        skill("s3", "t/add", json!({"a": "${steps.s2.output}", "b": 1})),
        skill("s4", "t/add", json!({"a": "${steps.s3.output}", "b": 1})),
        skill("s5", "t/add", json!({"a": "${steps.s4.output}", "b": 1})),
    ]});
    let host = Memory::default();
    // Entries 1–6 are s1–s3's starts and ends; the 8th, s4's end, goes with s5's start.
    *host.fail_write.lock().unwrap() = Some(8);
    let plan = plan(&document.to_string(), Format::Json).unwrap();
    let stopped = run(
        &plan,
        &json!({}),
        host.journal(),
        &host,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(stopped, Err(HostError("the database went away".into())));
    *host.fail_write.lock().unwrap() = None;
    let end = go(document, json!({}), &host).await;
    assert_eq!(end, RunEnd::Completed(json!(6)));
    for step in ["s1", "s2", "s3", "s5"] {
        assert_eq!(host.calls(step), 1, "{step}");
    }
    // The step in flight when the write failed ran again: at-least-once for that one.
    assert_eq!(host.calls("s4"), 2);
}

#[tokio::test]
async fn a_steps_end_goes_with_the_next_write_but_never_waits_on_a_branch() {
    let host = Memory::default();
    let document = json!({"steps": [
        skill("a", "t/add", json!({"a": 1, "b": 1})),
        {"id": "p", "kind": "parallel", "branches": [
            skill("b", "t/add", json!({"a": "${steps.a.output}", "b": 1})),
            skill("c", "t/slow", json!({"ms": 20})),
        ]},
        skill("d", "t/add", json!({"a": "${steps.p.output.b}", "b": 1})),
    ]});
    let end = go(document, json!({}), &host).await;
    assert_eq!(end, RunEnd::Completed(json!(4)));
    // a's start; a's end with p's start; each branch's start and end on its own (b's end
    // is written while c still runs); p's end with d's start; d's end before the run ends.
    assert_eq!(*host.batches.lock().unwrap(), [1, 2, 1, 1, 1, 1, 2, 1]);
    let entries = host.entries.lock().unwrap();
    let names: Vec<String> = entries
        .iter()
        .map(|e| match e {
            Entry::Started { key, .. } => format!("start {}", key.step),
            Entry::Finished { key, .. } => format!("end {}", key.step),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(names[..3], ["start a", "end a", "start p"]);
    let mut branches = names[3..7].to_vec();
    assert_eq!(branches.pop().as_deref(), Some("end c"), "{names:?}");
    branches.sort();
    assert_eq!(branches, ["end b", "start b", "start c"]);
    assert_eq!(names[7..], ["end p", "start d", "end d"]);
}

#[tokio::test]
async fn a_failed_child_is_retried_and_an_abandoned_one_canceled() {
    let host = Memory::default();
    let document = json!({"steps": [{"id": "c", "kind": "agent", "agent": "helper",
        "retry": {"max_attempts": 2, "initial_delay_ms": 1, "retry_on": ["failed"]}}]});
    assert!(matches!(
        go(document.clone(), json!({}), &host).await,
        RunEnd::Suspended(_)
    ));
    host.children.lock().unwrap().insert(
        "run-c-1".into(),
        Some(Err(
            StepError::new("failed", "no").retried_as(RetryOn::Failed)
        )),
    );
    let RunEnd::Suspended(wake) = go(document.clone(), json!({}), &host).await else {
        panic!("a retry waits")
    };
    tokio::time::sleep(Duration::from_millis(
        wake.at_ms.unwrap().saturating_sub(now()) + 1,
    ))
    .await;
    let RunEnd::Suspended(wake) = go(document.clone(), json!({}), &host).await else {
        panic!("the second child runs")
    };
    assert_eq!(wake.children, ["run-c-2"]);
    host.children
        .lock()
        .unwrap()
        .insert("run-c-2".into(), Some(Ok(json!(2))));
    assert_eq!(
        go(document, json!({}), &host).await,
        RunEnd::Completed(json!(2))
    );

    // `any` with a child still running and a skill that succeeds: the child is canceled.
    let host = Memory::default();
    let document = parallel(
        json!("any"),
        "fail-fast",
        vec![
            json!({"id": "c", "kind": "agent", "agent": "helper"}),
            skill("fast", "t/slow", json!({"ms": 30})),
        ],
    );
    let end = go(document, json!({}), &host).await;
    // The child's branch suspended; the skill's succeeded, which meets the join.
    assert_eq!(end, RunEnd::Completed(json!({"fast": {"ms": 30}})));
    assert_eq!(*host.canceled_children.lock().unwrap(), ["run-c-1"]);
}

#[tokio::test]
async fn canceling_a_run_stops_it() {
    let host = Memory::default();
    let document = json!({"steps": [skill("s", "t/slow", json!({"ms": 10_000}))]});
    let plan = plan(&document.to_string(), Format::Json).unwrap();
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        stopper.cancel();
    });
    let end = run(&plan, &json!({}), host.journal(), &host, cancel).await;
    assert_eq!(end, Ok(RunEnd::Canceled));
}
