//! The `kv` capability's storage on both backends: no lost increments under concurrency,
//! quotas, byte-order prefix listing with LIKE wildcards as plain characters, any string as
//! a key (U+0000 included), tenant scoping.

use omniforge_store::{AuditContext, KV_ENTRY_OVERHEAD, KvIncrement, KvQuota, KvWrite};

use crate::common::{all, skill_name};

#[tokio::test]
async fn concurrent_increments_are_never_lost_and_scopes_stay_apart() {
    for test in all().await {
        let db = &test.db;
        db.migrate().await.unwrap();
        let audit = AuditContext::system("test", "kv");
        let platform = db.platform();
        let acme = platform
            .create_tenant(&audit, "acme", "Acme")
            .await
            .unwrap();
        let globex = platform
            .create_tenant(&audit, "globex", "Globex")
            .await
            .unwrap();
        let quota = KvQuota {
            scope_bytes: 1 << 20,
            tenant_bytes: 1 << 30,
        };

        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let db = db.clone();
                let tenant = acme.id.clone();
                tokio::spawn(async move {
                    db.tenant(&tenant)
                        .kv_increment(&skill_name("ns/counter"), "hits", 1, quota)
                        .await
                        .unwrap()
                })
            })
            .collect();
        for task in tasks {
            assert!(matches!(task.await.unwrap(), KvIncrement::Value(_)));
        }
        let a = db.tenant(&acme.id);
        assert_eq!(
            a.kv_get(&skill_name("ns/counter"), "hits").await.unwrap(),
            Some(20i64.to_le_bytes().to_vec())
        );
        // Another tenant, and another skill of the same tenant, see nothing.
        let g = db.tenant(&globex.id);
        assert_eq!(
            g.kv_get(&skill_name("ns/counter"), "hits").await.unwrap(),
            None
        );
        assert_eq!(
            a.kv_get(&skill_name("ns/other"), "hits").await.unwrap(),
            None
        );

        // A value that is not a counter.
        assert_eq!(
            a.kv_set(&skill_name("ns/counter"), "name", b"ada", quota)
                .await
                .unwrap(),
            KvWrite::Written
        );
        assert_eq!(
            a.kv_increment(&skill_name("ns/counter"), "name", 1, quota)
                .await
                .unwrap(),
            KvIncrement::NotACounter
        );

        // Prefix listing in byte order; `%` and `_` are not wildcards.
        for key in ["a%b", "a_c", "ab", "a%", "b"] {
            a.kv_set(&skill_name("ns/list"), key, b"1", quota)
                .await
                .unwrap();
        }
        assert_eq!(
            a.kv_list_keys(&skill_name("ns/list"), "a%", 10)
                .await
                .unwrap(),
            ["a%", "a%b"]
        );
        assert_eq!(
            a.kv_list_keys(&skill_name("ns/list"), "a", 10)
                .await
                .unwrap(),
            ["a%", "a%b", "a_c", "ab"]
        );
        assert_eq!(
            a.kv_list_keys(&skill_name("ns/list"), "a", 2)
                .await
                .unwrap()
                .len(),
            2
        );

        // Any string is a key, U+0000 included, and the order is UTF-8 byte order on both
        // engines (not a collation's).
        for key in ["k\u{10000}", "ké", "kz", "k\0\0", "k", "k\0"] {
            a.kv_set(&skill_name("ns/bytes"), key, key.as_bytes(), quota)
                .await
                .unwrap();
        }
        assert_eq!(
            a.kv_list_keys(&skill_name("ns/bytes"), "k", 10)
                .await
                .unwrap(),
            ["k", "k\0", "k\0\0", "kz", "ké", "k\u{10000}"]
        );
        assert_eq!(
            a.kv_list_keys(&skill_name("ns/bytes"), "k\0", 10)
                .await
                .unwrap(),
            ["k\0", "k\0\0"]
        );
        assert_eq!(
            a.kv_get(&skill_name("ns/bytes"), "k\0")
                .await
                .unwrap()
                .as_deref(),
            Some(b"k\0".as_slice())
        );
        a.kv_delete(&skill_name("ns/bytes"), "k\0").await.unwrap();
        assert_eq!(
            a.kv_get(&skill_name("ns/bytes"), "k\0").await.unwrap(),
            None
        );
        assert!(
            a.kv_get(&skill_name("ns/bytes"), "k\0\0")
                .await
                .unwrap()
                .is_some()
        );

        // The quota counts keys, values and the per-entry overhead; replacing a value frees
        // the old one.
        let small = KvQuota {
            scope_bytes: 500,
            tenant_bytes: 1 << 30,
        };
        assert_eq!(KV_ENTRY_OVERHEAD, 256);
        assert_eq!(
            a.kv_set(&skill_name("ns/quota"), "k", &[0; 90], small)
                .await
                .unwrap(),
            KvWrite::Written,
            "1 + 90 + 256 of 500"
        );
        assert_eq!(
            a.kv_set(&skill_name("ns/quota"), "j", &[0; 20], small)
                .await
                .unwrap(),
            KvWrite::QuotaExceeded,
            "347 + 277 of 500"
        );
        assert_eq!(
            a.kv_set(&skill_name("ns/quota"), "k", &[0; 99], small)
                .await
                .unwrap(),
            KvWrite::Written
        );
        assert_eq!(
            a.kv_increment(&skill_name("ns/quota"), "n", 1, small)
                .await
                .unwrap(),
            KvIncrement::QuotaExceeded
        );
        a.kv_delete(&skill_name("ns/quota"), "k").await.unwrap();
        assert_eq!(
            a.kv_set(&skill_name("ns/quota"), "j", &[0; 20], small)
                .await
                .unwrap(),
            KvWrite::Written
        );
        let usage = a.kv_usage(&skill_name("ns/quota")).await.unwrap();
        assert_eq!((usage.scope_bytes, usage.scope_entries), (277, 1));

        // The tenant's export carries its kv data, base64, and no other tenant's.
        g.kv_set(&skill_name("ns/counter"), "secret", b"globex only", quota)
            .await
            .unwrap();
        let export = a.export().await.unwrap().unwrap();
        let entries: Vec<(&str, &str, &str)> = export
            .kv_entries
            .iter()
            .map(|e| (e.skill.as_str(), e.key.as_str(), e.value_base64.as_str()))
            .collect();
        assert_eq!(
            entries,
            [
                ("ns/bytes", "k", "aw=="),
                ("ns/bytes", "k\0\0", "awAA"),
                ("ns/bytes", "kz", "a3o="),
                ("ns/bytes", "ké", "a8Op"),
                ("ns/bytes", "k\u{10000}", "a/CQgIA="),
                ("ns/counter", "hits", "FAAAAAAAAAA="),
                ("ns/counter", "name", "YWRh"),
                ("ns/list", "a%", "MQ=="),
                ("ns/list", "a%b", "MQ=="),
                ("ns/list", "a_c", "MQ=="),
                ("ns/list", "ab", "MQ=="),
                ("ns/list", "b", "MQ=="),
                ("ns/quota", "j", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ]
        );
        assert!(export.kv_entries.iter().all(|e| e.updated_at_ms > 0));
    }
}

#[tokio::test]
async fn the_tenant_total_spans_every_skill_and_the_running_totals_match_the_entries() {
    for test in all().await {
        let db = &test.db;
        db.migrate().await.unwrap();
        let audit = AuditContext::system("test", "kv");
        let acme = db
            .platform()
            .create_tenant(&audit, "acme", "Acme")
            .await
            .unwrap();
        let globex = db
            .platform()
            .create_tenant(&audit, "globex", "Globex")
            .await
            .unwrap();
        // Each entry is 1 + 10 + 256 = 267 bytes: 7 fit in 2,000 bytes, whichever skills
        // hold them, and concurrent writers cannot all pass the check.
        let quota = KvQuota {
            scope_bytes: 1 << 20,
            tenant_bytes: 2_000,
        };
        let tasks: Vec<_> = (0..20)
            .map(|n| {
                let db = db.clone();
                let tenant = acme.id.clone();
                tokio::spawn(async move {
                    db.tenant(&tenant)
                        .kv_set(&skill_name(&format!("ns/skill-{n}")), "k", &[7; 10], quota)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut written = 0;
        for task in tasks {
            if task.await.unwrap() == KvWrite::Written {
                written += 1;
            }
        }
        assert_eq!(written, 7, "{}", db.backend().name());
        let a = db.tenant(&acme.id);
        assert_eq!(a.kv_tenant_usage().await.unwrap(), (7 * 267, 7));
        // Another tenant's store is its own.
        let g = db.tenant(&globex.id);
        assert_eq!(
            g.kv_set(&skill_name("ns/skill-0"), "k", &[7; 10], quota)
                .await
                .unwrap(),
            KvWrite::Written
        );
        // Deleting frees room for any skill; replacing with a smaller value frees the rest.
        let export = a.export().await.unwrap().unwrap();
        let first = &export.kv_entries[0].skill;
        a.kv_delete(first, "k").await.unwrap();
        assert_eq!(
            a.kv_set(&skill_name("ns/another"), "k", &[7; 10], quota)
                .await
                .unwrap(),
            KvWrite::Written
        );
        assert_eq!(
            a.kv_set(&skill_name("ns/another"), "kk", &[7; 10], quota)
                .await
                .unwrap(),
            KvWrite::QuotaExceeded
        );
        // The totals are what the entries add up to.
        let export = a.export().await.unwrap().unwrap();
        let charged: i64 = export
            .kv_entries
            .iter()
            .map(|e| {
                use base64::Engine as _;
                let value = base64::engine::general_purpose::STANDARD
                    .decode(&e.value_base64)
                    .unwrap();
                (e.key.len() + value.len()) as i64 + 256
            })
            .sum();
        assert_eq!(
            a.kv_tenant_usage().await.unwrap(),
            (charged, export.kv_entries.len() as i64)
        );
    }
}
