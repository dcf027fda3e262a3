//! An agent run's journal on both engines (PostgreSQL writes a step's start and end as one
//! statement, SQLite in a transaction): a write lands only while its writer holds the run's
//! lease, numbers its event after the run's last, and a new attempt resets the row.

use omniforge_store::{AuditContext, EventKind, NewEvent, StepChange, StepWrite, now_ms};
use serde_json::json;

use crate::common::all;
use crate::tasks::{claim, hello, seqs, submit};

fn started(attempt: i64, at_ms: i64) -> StepWrite {
    StepWrite::Started {
        step: "greet".into(),
        item: "3".into(),
        kind: "skill",
        attempt,
        at_ms,
    }
}

fn event(step: &str) -> NewEvent {
    NewEvent {
        kind: EventKind::StepStarted,
        data: json!({ "step": step }),
    }
}

fn one(write: &StepWrite, event: Option<NewEvent>) -> [StepChange; 1] {
    [StepChange {
        write: write.clone(),
        event,
    }]
}

fn ended(step: &str, output: &str, at_ms: i64) -> StepWrite {
    StepWrite::Finished {
        step: step.into(),
        item: "3".into(),
        output: Some(output.into()),
        error: None,
        at_ms,
    }
}

#[tokio::test]
async fn journal_writes_need_the_lease_and_number_their_events() {
    for test in all().await {
        let db = &test.db;
        let engine = test.url.split(':').next().unwrap_or_default().to_owned();
        db.migrate().await.unwrap();
        let audit = AuditContext::system("test", "journal");
        let acme = db
            .platform()
            .create_tenant(&audit, "acme", "Acme")
            .await
            .unwrap()
            .id;
        let task = submit(db, &acme, hello()).await;
        let now = now_ms();
        let claimed = claim(db, &acme, 1, "w1", now).await;
        assert_eq!(claimed.len(), 1, "{engine}");
        let platform = db.platform();
        let before = seqs(db, &task).await;

        // Another owner writes nothing, not even an event number.
        let written = platform
            .write_steps(
                &task.id,
                "w2",
                &one(&started(1, now), Some(event("greet"))),
                now,
            )
            .await
            .unwrap();
        assert!(!written, "{engine}");
        assert!(platform.journal(&task.id).await.unwrap().is_empty());
        assert_eq!(seqs(db, &task).await, before, "{engine}");

        // The holder's start: the row and the event, numbered next.
        let written = platform
            .write_steps(
                &task.id,
                "w1",
                &one(&started(1, now), Some(event("greet"))),
                now,
            )
            .await
            .unwrap();
        assert!(written, "{engine}");
        let after_start = seqs(db, &task).await;
        assert_eq!(after_start.len(), before.len() + 1, "{engine}");
        assert_eq!(after_start.last(), Some(&(before.last().unwrap() + 1)));
        let events = db
            .tenant(&acme)
            .task_events(&task.id, *before.last().unwrap(), 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(events[0].kind, EventKind::StepStarted, "{engine}");

        // Its end without an event: the row finishes, no number is taken.
        let finished = ended("greet", "{\"greeting\":\"hi\"}", now + 5);
        assert!(
            platform
                .write_steps(&task.id, "w1", &one(&finished, None), now)
                .await
                .unwrap()
        );
        assert_eq!(seqs(db, &task).await, after_start, "{engine}");
        let journal = platform.journal(&task.id).await.unwrap();
        assert_eq!(journal.len(), 1, "{engine}");
        let row = &journal[0];
        assert_eq!((row.step.as_str(), row.item.as_str()), ("greet", "3"));
        assert_eq!(row.state, "succeeded", "{engine}");
        assert_eq!(row.output.as_deref(), Some("{\"greeting\":\"hi\"}"));
        assert_eq!(row.finished_at_ms, Some(now + 5), "{engine}");

        // Another owner cannot finish it either.
        assert!(
            !platform
                .write_steps(&task.id, "w2", &one(&finished, None), now)
                .await
                .unwrap()
        );

        // A new attempt resets the row to running, without its output.
        assert!(
            platform
                .write_steps(&task.id, "w1", &one(&started(2, now + 10), None), now)
                .await
                .unwrap()
        );
        let row = &platform.journal(&task.id).await.unwrap()[0];
        assert_eq!(row.state, "running", "{engine}");
        assert_eq!(row.attempt, 2, "{engine}");
        assert_eq!(row.output, None, "{engine}");
        assert_eq!(row.finished_at_ms, None, "{engine}");
        assert_eq!(row.started_at_ms, now + 10, "{engine}");

        // A step's end with the next step's start: both rows, both events, numbered in
        // order, in one write.
        let before = seqs(db, &task).await;
        let mut next = started(1, now + 20);
        if let StepWrite::Started { step, .. } = &mut next {
            *step = "tally".into();
        }
        let batch = [
            StepChange {
                write: ended("greet", "1", now + 20),
                event: Some(NewEvent {
                    kind: EventKind::StepFinished,
                    data: json!({ "step": "greet" }),
                }),
            },
            StepChange {
                write: next,
                event: Some(event("tally")),
            },
        ];
        assert!(
            !platform
                .write_steps(&task.id, "w2", &batch, now)
                .await
                .unwrap()
        );
        assert_eq!(seqs(db, &task).await, before, "{engine}");
        assert!(
            platform
                .write_steps(&task.id, "w1", &batch, now)
                .await
                .unwrap()
        );
        let events = db
            .tenant(&acme)
            .task_events(&task.id, *before.last().unwrap(), 10)
            .await
            .unwrap()
            .unwrap();
        let kinds: Vec<_> = events
            .iter()
            .map(|e| {
                let data: serde_json::Value = serde_json::from_str(e.data.get()).unwrap();
                (e.seq, e.kind, data["step"].clone())
            })
            .collect();
        let last = *before.last().unwrap();
        assert_eq!(
            kinds,
            [
                (last + 1, EventKind::StepFinished, json!("greet")),
                (last + 2, EventKind::StepStarted, json!("tally")),
            ],
            "{engine}"
        );
        let mut journal = platform.journal(&task.id).await.unwrap();
        journal.sort_by(|a, b| a.step.cmp(&b.step));
        let states: Vec<_> = journal
            .iter()
            .map(|r| (r.step.as_str(), r.state.as_str()))
            .collect();
        assert_eq!(
            states,
            [("greet", "succeeded"), ("tally", "running")],
            "{engine}"
        );

        // Two writes of one row in one call take effect in order (PostgreSQL takes its
        // transaction for them: one statement's parts would not see each other).
        let twice = [
            StepChange {
                write: started(3, now + 30),
                event: None,
            },
            StepChange {
                write: ended("greet", "3", now + 31),
                event: None,
            },
        ];
        assert!(
            platform
                .write_steps(&task.id, "w1", &twice, now)
                .await
                .unwrap()
        );
        let journal = platform.journal(&task.id).await.unwrap();
        let greet = journal.iter().find(|r| r.step == "greet").unwrap();
        assert_eq!(
            (greet.state.as_str(), greet.attempt, greet.output.as_deref()),
            ("succeeded", 3, Some("3")),
            "{engine}"
        );
    }
}
