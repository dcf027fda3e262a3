//! The task queue on both engines: claims honour the running limit and serve the least
//! recently served tenant first; only the lease holder records an ending; an expired lease
//! puts the task back as a new attempt, until the attempts run out; idempotency keys expire;
//! old finished tasks are purged; batches of submissions and of endings commit together;
//! a tenant's export holds its tasks and their events.

use omniforge_store::{
    AuditContext, Claim, Database, Ending, EventKind, Finish, Idempotency, NewEvent, NewTask,
    QueuedTask, Submission, Task, TaskState, TaskTarget, TenantId, now_ms,
};
use serde_json::json;

use crate::common::{all, skill_name};

pub(crate) fn hello() -> NewTask {
    NewTask {
        target: TaskTarget::Skill {
            skill: skill_name("acme/hello"),
            requirement: None,
            version: "1.0.0".parse().unwrap(),
        },
        parent_id: None,
        context_id: None,
        input: "{}".into(),
        priority: 0,
        not_before_ms: None,
        retry_of: None,
        created_by: "test".into(),
        request_id: "test".into(),
    }
}

pub(crate) async fn submit(db: &Database, tenant: &TenantId, task: NewTask) -> Task {
    match db
        .tenant(tenant)
        .submit_task(task, 100, None)
        .await
        .unwrap()
    {
        Submission::Created(task) => task,
        other => panic!("not created: {other:?}"),
    }
}

pub(crate) async fn claim(
    db: &Database,
    tenant: &TenantId,
    max_running: u32,
    owner: &str,
    now: i64,
) -> Vec<Task> {
    db.platform()
        .claim_tasks(&Claim {
            tenant,
            max_running,
            limit: 10,
            owner,
            lease_ms: 1000,
            now_ms: now,
        })
        .await
        .unwrap()
}

fn completed() -> Ending {
    Ending {
        state: TaskState::Completed,
        output: Some("{\"ok\":true}".into()),
        error: None,
        usage: None,
    }
}

#[tokio::test]
async fn claims_follow_limits_priorities_and_the_least_recently_served_tenant() {
    for test in all().await {
        let db = &test.db;
        db.migrate().await.unwrap();
        let audit = AuditContext::system("test", "tasks");
        let acme = db
            .platform()
            .create_tenant(&audit, "acme", "Acme")
            .await
            .unwrap()
            .id;
        let globex = db
            .platform()
            .create_tenant(&audit, "globex", "Globex")
            .await
            .unwrap()
            .id;
        let now = now_ms();
        let low = submit(db, &acme, hello()).await;
        let high = submit(
            db,
            &acme,
            NewTask {
                priority: 5,
                ..hello()
            },
        )
        .await;
        let later = submit(
            db,
            &acme,
            NewTask {
                not_before_ms: Some(now + 60_000),
                ..hello()
            },
        )
        .await;
        submit(db, &globex, hello()).await;
        // Claims look a moment later: every task but `later` is due by then.
        let now = now + 1000;

        // Running limit 1: one task, the higher priority one.
        let first = claim(db, &acme, 1, "w1", now).await;
        assert_eq!(first.iter().map(|t| &t.id).collect::<Vec<_>>(), [&high.id]);
        assert_eq!((first[0].state, first[0].attempts), (TaskState::Working, 1));
        assert!(
            claim(db, &acme, 1, "w1", now).await.is_empty(),
            "at its limit"
        );
        // acme was just served: globex comes first now.
        let waiting = db.platform().waiting_tenants(10).await.unwrap();
        assert_eq!(waiting.first(), Some(&globex), "{waiting:?}");
        // Room for more: the ready one, never the one not due yet.
        let second = claim(db, &acme, 5, "w1", now).await;
        assert_eq!(second.iter().map(|t| &t.id).collect::<Vec<_>>(), [&low.id]);
        assert!(claim(db, &acme, 5, "w1", now).await.is_empty());
        let due = claim(db, &acme, 5, "w1", now + 60_000).await;
        assert_eq!(due.iter().map(|t| &t.id).collect::<Vec<_>>(), [&later.id]);

        // Only the lease holder records the ending, once.
        let platform = db.platform();
        assert!(
            !platform
                .finish_task(&high.id, "w2", 1, &completed(), &[], now)
                .await
                .unwrap()
        );
        assert!(
            !platform
                .finish_task(&high.id, "w1", 2, &completed(), &[], now)
                .await
                .unwrap()
        );
        assert!(
            platform
                .finish_task(&high.id, "w1", 1, &completed(), &[], now)
                .await
                .unwrap()
        );
        assert!(
            !platform
                .finish_task(&high.id, "w1", 1, &completed(), &[], now)
                .await
                .unwrap()
        );
        let done = db.tenant(&acme).task(&high.id).await.unwrap().unwrap();
        assert_eq!(done.state, TaskState::Completed);
        let events = db
            .tenant(&acme)
            .task_events(&high.id, 0, 100)
            .await
            .unwrap()
            .unwrap();
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4], "submitted, working, result, completed");
        // Another tenant sees none of it.
        assert!(db.tenant(&globex).task(&high.id).await.unwrap().is_none());
        assert!(
            db.tenant(&globex)
                .task_events(&high.id, 0, 10)
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn an_expired_lease_runs_again_until_the_attempts_run_out() {
    for test in all().await {
        let db = &test.db;
        db.migrate().await.unwrap();
        let audit = AuditContext::system("test", "tasks");
        let acme = db
            .platform()
            .create_tenant(&audit, "acme", "Acme")
            .await
            .unwrap()
            .id;
        let task = submit(db, &acme, hello()).await;
        let gave_up = json!({"type": "worker-lost"});
        let platform = db.platform();
        let mut now = now_ms();
        for attempt in 1..=2 {
            let claimed = claim(db, &acme, 5, "dead", now).await;
            assert_eq!(claimed[0].attempts, attempt);
            // Still within its lease: nothing to recover.
            assert_eq!(
                platform.sweep_tasks(2, &gave_up, now + 500).await.unwrap(),
                0
            );
            now += 1500;
            assert_eq!(platform.sweep_tasks(2, &gave_up, now).await.unwrap(), 1);
            let state = db
                .tenant(&acme)
                .task(&task.id)
                .await
                .unwrap()
                .unwrap()
                .state;
            let expected = if attempt < 2 {
                TaskState::Submitted
            } else {
                TaskState::Failed
            };
            assert_eq!(state, expected, "after attempt {attempt}");
        }
        let failed = db.tenant(&acme).task(&task.id).await.unwrap().unwrap();
        assert_eq!(failed.error, Some(gave_up));
        assert_eq!(failed.attempts, 2);
        // The dead worker's late ending is refused.
        assert!(
            !platform
                .finish_task(&task.id, "dead", 2, &completed(), &[], now)
                .await
                .unwrap()
        );
    }
}

#[tokio::test]
async fn idempotency_keys_answer_their_task_until_they_expire_and_old_tasks_are_purged() {
    for test in all().await {
        let db = &test.db;
        db.migrate().await.unwrap();
        let audit = AuditContext::system("test", "tasks");
        let acme = db
            .platform()
            .create_tenant(&audit, "acme", "Acme")
            .await
            .unwrap()
            .id;
        let store = db.tenant(&acme);
        let key = |body: &str, ttl_ms| Idempotency {
            key: "k1".into(),
            body_sha256: body.into(),
            ttl_ms,
        };
        let Submission::Created(first) = store
            .submit_task(hello(), 100, Some(key("a", 60_000)))
            .await
            .unwrap()
        else {
            panic!("created")
        };
        let Submission::Replayed(again) = store
            .submit_task(hello(), 100, Some(key("a", 60_000)))
            .await
            .unwrap()
        else {
            panic!("replayed")
        };
        assert_eq!(again.id, first.id);
        assert!(matches!(
            store
                .submit_task(hello(), 100, Some(key("b", 60_000)))
                .await
                .unwrap(),
            Submission::KeyReused
        ));
        // A key older than its time starts afresh.
        let Submission::Created(fresh) = store
            .submit_task(hello(), 100, Some(key("b", -1)))
            .await
            .unwrap()
        else {
            panic!("a new task after the key expired")
        };
        assert_ne!(fresh.id, first.id);
        // The queue bound.
        assert!(matches!(
            store.submit_task(hello(), 2, None).await.unwrap(),
            Submission::QueueFull { max_queued: 2 }
        ));

        // Only ended tasks are purged, with their events.
        let now = now_ms();
        let claimed = claim(db, &acme, 5, "w1", now).await;
        assert_eq!(claimed.len(), 2);
        assert!(
            db.platform()
                .finish_task(&first.id, "w1", 1, &completed(), &[], now)
                .await
                .unwrap()
        );
        assert_eq!(
            db.platform()
                .purge_tasks(now - 1, now - 1, 100)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            db.platform()
                .purge_tasks(now + 1, now + 1, 100)
                .await
                .unwrap(),
            1
        );
        assert!(store.task(&first.id).await.unwrap().is_none());
        assert!(
            store.task(&fresh.id).await.unwrap().is_some(),
            "still running"
        );
    }
}

#[tokio::test]
async fn batches_of_submissions_and_endings_commit_together_and_keep_each_answer() {
    for test in all().await {
        let db = &test.db;
        db.migrate().await.unwrap();
        let audit = AuditContext::system("test", "tasks");
        let platform = db.platform();
        let acme = platform
            .create_tenant(&audit, "acme", "Acme")
            .await
            .unwrap()
            .id;
        let globex = platform
            .create_tenant(&audit, "globex", "Globex")
            .await
            .unwrap()
            .id;
        let queued = |tenant: &TenantId, task: NewTask| QueuedTask {
            tenant: tenant.clone(),
            task,
        };
        let retried = submit(db, &acme, hello()).await;
        let batch = vec![
            queued(&acme, hello()),
            queued(&globex, hello()),
            queued(
                &acme,
                NewTask {
                    retry_of: Some(retried.id.clone()),
                    priority: 3,
                    ..hello()
                },
            ),
        ];
        let tasks = platform.queue_tasks(&batch).await.unwrap();
        assert_eq!(tasks.len(), 3);
        assert_eq!(
            tasks.iter().map(|t| &t.tenant_id).collect::<Vec<_>>(),
            [&acme, &globex, &acme],
            "answers in the batch's order"
        );
        // What the batch answered is what was stored, first event included.
        for task in &tasks {
            let read = db
                .tenant(&task.tenant_id)
                .task(&task.id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (read.state, read.priority, read.last_seq, &read.retry_of),
                (task.state, task.priority, 1, &task.retry_of)
            );
            let events = db
                .tenant(&task.tenant_id)
                .task_events(&task.id, 0, 10)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(events.len(), 1);
            let data: serde_json::Value = serde_json::from_str(events[0].data.get()).unwrap();
            assert_eq!(data["state"], "submitted");
            assert_eq!(data.get("retry_of").is_some(), task.retry_of.is_some());
        }
        // Both tenants are waiting to be served.
        let waiting = platform.waiting_tenants(10).await.unwrap();
        assert!(waiting.contains(&acme) && waiting.contains(&globex));

        // Endings of one worker in one commit: the one it lost is not written, the others
        // are, each with its own event numbers.
        let now = now_ms() + 1000;
        let running: Vec<Task> = claim(db, &acme, 10, "w1", now).await;
        assert_eq!(running.len(), 3);
        let finish = |task: &Task, attempt: u32, logs: usize| Finish {
            task: task.id.clone(),
            attempt,
            ending: completed(),
            logs: (0..logs)
                .map(|i| NewEvent {
                    kind: EventKind::Log,
                    data: json!({"level": "info", "message": format!("line {i}")}),
                })
                .collect(),
        };
        let finishes = [
            finish(&running[0], 1, 2),
            finish(&running[1], 7, 0),
            finish(&running[2], 1, 0),
        ];
        let written = platform.finish_tasks("w1", &finishes, now).await.unwrap();
        assert_eq!(written, [true, false, true]);
        assert_eq!(
            seqs(db, &running[0]).await,
            [1, 2, 3, 4, 5, 6],
            "logs, result, state"
        );
        assert_eq!(seqs(db, &running[1]).await, [1, 2], "not written");
        assert_eq!(seqs(db, &running[2]).await, [1, 2, 3, 4]);
        let still = db
            .tenant(&acme)
            .task(&running[1].id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(still.state, TaskState::Working);

        // A tenant's export holds its tasks with their events, and only its own.
        let export = db.tenant(&acme).export().await.unwrap().unwrap();
        let exported: Vec<_> = export.tasks.iter().map(|t| &t.task.id).collect();
        assert_eq!(exported.len(), 3, "{exported:?}");
        for task in [&retried, &tasks[0], &tasks[2]] {
            assert!(exported.contains(&&task.id), "{} missing", task.id);
        }
        let first = export
            .tasks
            .iter()
            .find(|t| t.task.id == running[0].id)
            .unwrap();
        assert_eq!(
            first.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6]
        );
        let json = serde_json::to_value(&export.tasks).unwrap();
        assert_eq!(json[0]["events"][0]["type"], "state", "{}", json[0]);
        assert_eq!(json[0]["skill"], "acme/hello", "{}", json[0]);
        let globex_export = db.tenant(&globex).export().await.unwrap().unwrap();
        assert_eq!(globex_export.tasks.len(), 1);
        assert_eq!(globex_export.tasks[0].task.tenant_id, globex);
    }
}

pub(crate) async fn seqs(db: &Database, task: &Task) -> Vec<i64> {
    let events = db
        .tenant(&task.tenant_id)
        .task_events(&task.id, 0, 100)
        .await
        .unwrap()
        .unwrap();
    events.iter().map(|e| e.seq).collect()
}
