//! Sealed secrets on both backends: versions count changes, listings page by name and never
//! cross tenants, every change is audited without its value, exports carry names only, and
//! a key rotation's re-seal never overwrites a value set meanwhile.

use omniforge_store::{AuditContext, AuditFilter, SealedSecret, SecretName};

use crate::common::all;

fn name(text: &str) -> SecretName {
    text.parse().unwrap()
}

fn sealed(bytes: &[u8], key: &str) -> SealedSecret {
    SealedSecret {
        sealed: bytes.to_vec(),
        key_id: key.into(),
    }
}

#[tokio::test]
async fn secrets_are_kept_per_tenant_audited_and_resealed_only_if_unchanged() {
    for test in all().await {
        let db = &test.db;
        db.migrate().await.unwrap();
        let system = AuditContext::system("test", "secrets");
        let platform = db.platform();
        let acme = platform
            .create_tenant(&system, "acme", "Acme")
            .await
            .unwrap();
        let globex = platform
            .create_tenant(&system, "globex", "Globex")
            .await
            .unwrap();
        let audit = AuditContext {
            actor: "user:usr_1 key:key_1".into(),
            actor_tenant: Some(acme.id.clone()),
            request_id: "req-1".into(),
        };
        let a = db.tenant(&acme.id);
        let g = db.tenant(&globex.id);

        let (first, created) = a
            .put_secret(&audit, &name("api-token"), &sealed(b"sealed-1", "k1"))
            .await
            .unwrap();
        assert!(created);
        assert_eq!(
            (first.version, first.updated_by.as_str()),
            (1, "user:usr_1 key:key_1")
        );
        let (second, created) = a
            .put_secret(&audit, &name("api-token"), &sealed(b"sealed-2", "k1"))
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(second.version, 2);
        assert_eq!(second.created_at_ms, first.created_at_ms);
        a.put_secret(&audit, &name("db.password"), &sealed(b"sealed-3", "k0"))
            .await
            .unwrap();
        // The same name in another tenant is another secret.
        g.put_secret(&system, &name("api-token"), &sealed(b"globex", "k0"))
            .await
            .unwrap();
        assert_eq!(
            a.sealed_secret(&name("api-token")).await.unwrap(),
            Some(sealed(b"sealed-2", "k1"))
        );
        assert_eq!(
            g.sealed_secret(&name("api-token")).await.unwrap(),
            Some(sealed(b"globex", "k0"))
        );
        assert_eq!(a.sealed_secret(&name("missing")).await.unwrap(), None);

        let page = a.secrets(None, 1).await.unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].name, name("api-token"));
        let rest = a.secrets(Some("api-token"), 10).await.unwrap();
        let rest: Vec<&str> = rest.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(rest, ["db.password"]);

        let events = a
            .list_audit_events(&AuditFilter {
                resource_type: Some("secret".into()),
                limit: 50,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        let actions: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.action.as_str(), e.resource_id.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("secret.set", "db.password"),
                ("secret.set", "api-token"),
                ("secret.set", "api-token")
            ]
        );
        assert_eq!(events[1].details["version"], 2);

        let export = a.export().await.unwrap().unwrap();
        let exported: Vec<&str> = export.secrets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(exported, ["api-token", "db.password"]);

        // Rotation to key k1: only rows under other keys, in (tenant, name) order, paged.
        let todo = platform.secrets_not_under("k1", None, 10).await.unwrap();
        let mut expected = vec![
            (acme.id.clone(), "db.password"),
            (globex.id.clone(), "api-token"),
        ];
        expected.sort();
        let found: Vec<_> = todo
            .iter()
            .map(|s| (s.tenant.clone(), s.name.as_str()))
            .collect();
        assert_eq!(found, expected);
        let after_first = platform
            .secrets_not_under("k1", Some((&todo[0].tenant, &todo[0].name)), 10)
            .await
            .unwrap();
        assert_eq!(after_first, todo[1..]);
        // A value set between the read and the re-seal is kept.
        let stale = todo.iter().find(|s| s.tenant == acme.id).unwrap().clone();
        a.put_secret(&audit, &name("db.password"), &sealed(b"newer", "k1"))
            .await
            .unwrap();
        assert!(
            !platform
                .reseal_secret(&stale, &sealed(b"resealed", "k1"))
                .await
                .unwrap()
        );
        assert_eq!(
            a.sealed_secret(&name("db.password")).await.unwrap(),
            Some(sealed(b"newer", "k1"))
        );
        let other = todo.iter().find(|s| s.tenant == globex.id).unwrap();
        assert!(
            platform
                .reseal_secret(other, &sealed(b"resealed", "k1"))
                .await
                .unwrap()
        );
        assert!(
            platform
                .secrets_not_under("k1", None, 10)
                .await
                .unwrap()
                .is_empty()
        );

        assert!(a.delete_secret(&audit, &name("api-token")).await.unwrap());
        assert!(!a.delete_secret(&audit, &name("api-token")).await.unwrap());
        assert!(g.sealed_secret(&name("api-token")).await.unwrap().is_some());
        let deleted = a
            .list_audit_events(&AuditFilter {
                action: Some("secret.delete".into()),
                limit: 50,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(deleted.len(), 1);
    }
}
