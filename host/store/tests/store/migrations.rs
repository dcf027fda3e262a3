//! Migrations apply to an empty database, are idempotent, report their status, and create
//! the same constraints on both backends.

use omniforge_store::{Backend, Database};

use crate::common::{all, skill_name, sqlite};

const TABLES: [&str; 8] = [
    "tenants",
    "users",
    "role_bindings",
    "api_keys",
    "audit_events",
    "namespaces",
    "skills",
    "skill_versions",
];

async fn count_rows(db: &Database, table: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
    match db {
        Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

async fn has_migrations_table(db: &Database) -> bool {
    let sqlite = "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = '_sqlx_migrations'";
    let postgres = "SELECT to_regclass('_sqlx_migrations') IS NOT NULL";
    match db {
        Database::Sqlite(pool) => sqlx::query_scalar(sqlite).fetch_one(pool).await.unwrap(),
        Database::Postgres(pool) => sqlx::query_scalar(postgres).fetch_one(pool).await.unwrap(),
    }
}

async fn execute(db: &Database, sql: &'static str) -> Result<(), sqlx::Error> {
    match db {
        Database::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        Database::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
    }
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_are_idempotent() {
    for test in all().await {
        let db = &test.db;
        let before = db.migration_status().await.unwrap();
        assert!(!before.is_empty());
        assert!(
            before.iter().all(|m| !m.applied),
            "{:?}: {before:?}",
            db.backend()
        );
        assert!(
            !has_migrations_table(db).await,
            "{:?}: a status check writes nothing",
            db.backend()
        );

        let applied = db.migrate().await.unwrap();
        assert_eq!(applied.len(), before.len(), "{:?}", db.backend());
        for table in TABLES {
            assert_eq!(count_rows(db, table).await, 0, "{:?} {table}", db.backend());
        }
        let status = db.migration_status().await.unwrap();
        assert!(
            status.iter().all(|m| m.applied),
            "{:?}: {status:?}",
            db.backend()
        );
        assert_eq!(status[0].description, "initial");

        assert_eq!(
            db.migrate().await.unwrap(),
            Vec::<i64>::new(),
            "nothing left to apply"
        );
        // A second pool (a restart) sees the same state.
        let again = Database::connect(&test.url).await.unwrap();
        assert!(
            again
                .migration_status()
                .await
                .unwrap()
                .iter()
                .all(|m| m.applied)
        );
        assert!(again.migrate().await.unwrap().is_empty());
        db.ping().await.unwrap();
    }
}

#[tokio::test]
async fn both_backends_enforce_the_same_constraints() {
    for test in all().await {
        let db = &test.db;
        db.migrate().await.unwrap();
        let backend = db.backend();
        execute(db, "INSERT INTO tenants (id, slug, name, created_at_ms, updated_at_ms) VALUES ('t1', 'acme', 'Acme', 1, 1)")
            .await
            .unwrap();
        let duplicate_slug = "INSERT INTO tenants (id, slug, name, created_at_ms, updated_at_ms) VALUES ('t2', 'acme', 'Other', 1, 1)";
        assert!(
            execute(db, duplicate_slug).await.is_err(),
            "{backend:?}: slugs are unique"
        );
        let bad_status = "INSERT INTO tenants (id, slug, name, status, created_at_ms, updated_at_ms) VALUES ('t3', 'x', 'X', 'deleted', 1, 1)";
        assert!(
            execute(db, bad_status).await.is_err(),
            "{backend:?}: status is checked"
        );
        let orphan_user = "INSERT INTO users (id, tenant_id, email, created_at_ms) VALUES ('u1', 'nope', 'a@b.c', 1)";
        assert!(
            execute(db, orphan_user).await.is_err(),
            "{backend:?}: foreign keys are enforced"
        );
        execute(db, "INSERT INTO users (id, tenant_id, email, created_at_ms) VALUES ('u1', 't1', 'a@b.c', 1)")
            .await
            .unwrap();
        let bad_role = "INSERT INTO role_bindings (tenant_id, user_id, role, created_at_ms) VALUES ('t1', 'u1', 'god', 1)";
        assert!(
            execute(db, bad_role).await.is_err(),
            "{backend:?}: roles are checked"
        );
        execute(db, "INSERT INTO role_bindings (tenant_id, user_id, role, created_at_ms) VALUES ('t1', 'u1', 'owner', 1)")
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn sqlite_is_created_on_first_run_in_wal_mode() {
    let test = sqlite().await;
    let path = test.url.strip_prefix("sqlite://").unwrap();
    assert!(
        std::path::Path::new(path).exists(),
        "the file and its directory were created"
    );
    let Database::Sqlite(pool) = &test.db else {
        unreachable!()
    };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(test.db.backend(), Backend::Sqlite);
}

#[tokio::test]
async fn unsupported_urls_are_refused_without_echoing_them() {
    let err = Database::connect("mysql://root:hunter2@localhost/db")
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("mysql"), "{message}");
    assert!(
        !message.contains("hunter2"),
        "credentials are never echoed: {message}"
    );
}

/// Runs one statement with text parameters on either engine (for writing rows the way an
/// older schema had them).
async fn exec(db: &Database, sql: &str, params: &[&str]) {
    macro_rules! run {
        ($pool:expr) => {{
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            for p in params {
                query = query.bind(*p);
            }
            query.execute($pool).await.unwrap();
        }};
    }
    match db {
        Database::Sqlite(pool) => run!(pool),
        Database::Postgres(pool) => run!(pool),
    }
}

#[tokio::test]
async fn kv_keys_written_as_text_survive_the_move_to_bytes() {
    for test in all().await {
        let db = &test.db;
        db.migrate_to(20261124000002).await.unwrap();
        // Rows written as the schema of the time had them (today's code writes newer ones).
        exec(
            db,
            "INSERT INTO tenants (id, slug, name, status, created_at_ms, updated_at_ms) \
             VALUES ('ten_m', 'acme', 'Acme', 'active', 0, 0)",
            &[],
        )
        .await;
        let tenant = omniforge_store::TenantId::new("ten_m");
        for key in ["b", "ab", "é"] {
            let insert = "INSERT INTO kv_entries (tenant_id, skill, key, value, size_bytes, \
                          updated_at_ms) VALUES ('ten_m', 'ns/s', $1, $2, 3, 0)";
            match db {
                Database::Sqlite(pool) => {
                    sqlx::query(insert)
                        .bind(key)
                        .bind(key.as_bytes())
                        .execute(pool)
                        .await
                        .unwrap();
                }
                Database::Postgres(pool) => {
                    sqlx::query(insert)
                        .bind(key)
                        .bind(key.as_bytes())
                        .execute(pool)
                        .await
                        .unwrap();
                }
            }
        }
        db.migrate().await.unwrap();
        let store = db.tenant(&tenant);
        assert_eq!(
            store
                .kv_list_keys(&skill_name("ns/s"), "", 10)
                .await
                .unwrap(),
            ["ab", "b", "é"],
            "{}",
            db.backend().name()
        );
        assert_eq!(
            store
                .kv_get(&skill_name("ns/s"), "é")
                .await
                .unwrap()
                .as_deref(),
            Some("é".as_bytes())
        );
        // The move to running kv totals charged the existing entries: key + value + 256.
        // ("b", "b"), ("ab", "ab") and ("é", "é" as 2 bytes each): 10 bytes and 3 rows.
        let usage = store.kv_usage(&skill_name("ns/s")).await.unwrap();
        assert_eq!(
            (usage.tenant_bytes, usage.scope_bytes),
            (3 * 256 + 10, 3 * 256 + 10)
        );
    }
}

#[tokio::test]
async fn audit_events_get_opaque_ids_in_their_old_order() {
    for test in all().await {
        let db = &test.db;
        db.migrate_to(20261124000003).await.unwrap();
        exec(
            db,
            "INSERT INTO tenants (id, slug, name, status, created_at_ms, updated_at_ms) \
             VALUES ('ten_m', 'acme', 'Acme', 'active', 0, 0)",
            &[],
        )
        .await;
        // Two events in one millisecond and one later, written with integer ids.
        for (at, action) in [
            ("1000", "a.first"),
            ("1000", "a.second"),
            ("2000", "a.third"),
        ] {
            exec(
                db,
                &format!(
                    "INSERT INTO audit_events (tenant_id, actor, action, resource_type, \
                     resource_id, request_id, details, created_at_ms) \
                     VALUES ('ten_m', 'system:test', $1, 'x', 'x', 'r', '{{}}', {at})"
                ),
                &[action],
            )
            .await;
        }
        db.migrate().await.unwrap();
        let events = db
            .tenant(&omniforge_store::TenantId::new("ten_m"))
            .list_audit_events(&omniforge_store::AuditFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            ["a.third", "a.second", "a.first"],
            "{}",
            db.backend().name()
        );
        for event in &events {
            assert!(
                event.id.starts_with("aud_") && event.id.len() == 36,
                "{}",
                event.id
            );
        }
        // New events sort after the migrated ones.
        let audit = omniforge_store::AuditContext::system("test", "m");
        db.platform()
            .rename_tenant(&audit, &omniforge_store::TenantId::new("ten_m"), "Acme 2")
            .await
            .unwrap();
        let newest = db
            .tenant(&omniforge_store::TenantId::new("ten_m"))
            .list_audit_events(&omniforge_store::AuditFilter {
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(newest[0].action, "tenant.update");
    }
}

#[tokio::test]
async fn tasks_and_their_events_survive_the_move_to_agent_runs() {
    for test in all().await {
        let db = &test.db;
        db.migrate_to(20261204000001).await.unwrap();
        exec(
            db,
            "INSERT INTO tenants (id, slug, name, status, created_at_ms, updated_at_ms) \
             VALUES ('ten_m', 'acme', 'Acme', 'active', 0, 0)",
            &[],
        )
        .await;
        exec(
            db,
            "INSERT INTO tasks (id, tenant_id, skill, requirement, version, input, state, \
             priority, not_before_ms, attempts, output, last_seq, created_by, request_id, \
             created_at_ms, finished_at_ms) VALUES ('tsk_01', 'ten_m', 'ns/s', '^1', '1.2.0', \
             '{\"a\": 1}', 'completed', 3, 0, 1, '{\"ok\": true}', 2, 'test', 'r', 5, 9)",
            &[],
        )
        .await;
        for (seq, kind) in [("1", "state"), ("2", "result")] {
            exec(
                db,
                &format!(
                    "INSERT INTO task_events (task_id, seq, kind, data, at_ms) \
                     VALUES ('tsk_01', {seq}, '{kind}', '{{}}', 7)"
                ),
                &[],
            )
            .await;
        }
        db.migrate().await.unwrap();
        let tenant = omniforge_store::TenantId::new("ten_m");
        let store = db.tenant(&tenant);
        let id = omniforge_store::TaskId::new("tsk_01");
        let task = store.task(&id).await.unwrap().expect("the task survives");
        assert_eq!(
            task.target,
            omniforge_store::TaskTarget::Skill {
                skill: skill_name("ns/s"),
                requirement: Some("^1".into()),
                version: "1.2.0".parse().unwrap(),
            },
            "{}",
            db.backend().name()
        );
        assert_eq!(task.parent_id, None);
        assert_eq!(task.output.unwrap().get(), r#"{"ok": true}"#);
        let events = store.task_events(&id, 0, 10).await.unwrap().unwrap();
        assert_eq!(events.len(), 2, "{}", db.backend().name());
        // Deleting the task still takes its events along (the new table's cascade).
        exec(db, "DELETE FROM tasks WHERE id = 'tsk_01'", &[]).await;
        let left: i64 = match db {
            Database::Sqlite(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM task_events")
                .fetch_one(pool)
                .await
                .unwrap(),
            Database::Postgres(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM task_events")
                .fetch_one(pool)
                .await
                .unwrap(),
        };
        assert_eq!(left, 0, "{}", db.backend().name());
    }
}
