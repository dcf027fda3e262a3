//! The repositories on both backends: tenant scoping, audit events written with every
//! change, ownership rules, pagination, authentication lookups and exports.

use omniforge_store::{
    AuditContext, AuditFilter, Database, NewApiKey, NewUser, Role, StoreError, TenantStatus,
    UserId, UserStatus,
};

use crate::common::all;

fn audit(request: &str) -> AuditContext {
    AuditContext::system("test", request)
}

fn key(user: &UserId, prefix: &str) -> NewApiKey {
    NewApiKey {
        user_id: user.clone(),
        name: "test".into(),
        prefix: prefix.into(),
        secret_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        scopes: vec!["skill:read".into()],
        expires_at_ms: None,
        created_by: None,
    }
}

async fn migrated(db: &Database) {
    db.migrate().await.unwrap();
}

#[tokio::test]
async fn tenant_scoped_stores_never_see_other_tenants_rows() {
    for test in all().await {
        let db = &test.db;
        migrated(db).await;
        let platform = db.platform();
        let a = platform
            .create_tenant_with_owner(&audit("r1"), "acme", "Acme", "ada@acme.test", true, |u| {
                key(u, "aaaaaaaaaaaa")
            })
            .await
            .unwrap();
        let b = platform
            .create_tenant_with_owner(
                &audit("r2"),
                "globex",
                "Globex",
                "bo@globex.test",
                false,
                |u| key(u, "bbbbbbbbbbbb"),
            )
            .await
            .unwrap();
        assert!(a.owner.is_platform_admin && !b.owner.is_platform_admin);
        let a_store = db.tenant(&a.tenant.id);
        assert!(a_store.get_user(&b.owner.id).await.unwrap().is_none());
        assert!(a_store.get_api_key(&b.api_key.id).await.unwrap().is_none());
        assert!(
            a_store
                .revoke_api_key(&audit("r3"), &b.api_key.id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            a_store
                .set_roles(&audit("r3"), &b.owner.id, &[Role::Viewer])
                .await
                .unwrap()
                .is_none()
        );
        // A key for another tenant's user cannot be created through this tenant.
        assert!(
            a_store
                .create_api_key(&audit("r3"), key(&b.owner.id, "cccccccccccc"))
                .await
                .unwrap()
                .is_none()
        );
        let users = a_store.list_users(None, 50).await.unwrap();
        assert_eq!(users.len(), 1, "{:?}", db.backend());
        let b_key = db
            .tenant(&b.tenant.id)
            .get_api_key(&b.api_key.id)
            .await
            .unwrap();
        assert!(
            b_key.unwrap().revoked_at_ms.is_none(),
            "B's key was touched"
        );
        let events = a_store
            .list_audit_events(&AuditFilter {
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(
            events
                .iter()
                .all(|e| e.tenant_id.as_ref() == Some(&a.tenant.id))
        );
        assert_eq!(
            events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["api_key.create", "user.create", "tenant.create"]
        );
    }
}

#[tokio::test]
async fn changes_write_audit_events_and_owners_are_kept() {
    for test in all().await {
        let db = &test.db;
        migrated(db).await;
        let created = db
            .platform()
            .create_tenant_with_owner(&audit("r1"), "acme", "Acme", "ada@acme.test", true, |u| {
                key(u, "aaaaaaaaaaaa")
            })
            .await
            .unwrap();
        let store = db.tenant(&created.tenant.id);
        let owner = &created.owner.id;
        let demote = store.set_roles(&audit("r2"), owner, &[Role::Admin]).await;
        assert!(matches!(demote, Err(StoreError::Conflict(_))), "{demote:?}");
        let disable = store.disable_user(&audit("r2"), owner).await;
        assert!(
            matches!(disable, Err(StoreError::Conflict(_))),
            "{disable:?}"
        );

        let dev = store
            .create_user(
                &audit("r3"),
                NewUser {
                    email: "dev@acme.test".into(),
                    display_name: "Dev".into(),
                    roles: vec![Role::Developer, Role::Viewer, Role::Developer],
                    is_platform_admin: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(dev.roles, [Role::Developer, Role::Viewer]);
        let again = store
            .create_user(
                &audit("r4"),
                NewUser {
                    email: "dev@acme.test".into(),
                    display_name: String::new(),
                    roles: vec![],
                    is_platform_admin: false,
                },
            )
            .await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

        let dev_key = store
            .create_api_key(&audit("r5"), key(&dev.id, "dddddddddddd"))
            .await
            .unwrap()
            .unwrap();
        let disabled = store
            .disable_user(&audit("r6"), &dev.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(disabled.status, UserStatus::Disabled);
        let revoked = store.get_api_key(&dev_key.id).await.unwrap().unwrap();
        assert!(revoked.revoked_at_ms.is_some(), "disabling revokes keys");

        let events = store
            .list_audit_events(&AuditFilter {
                resource_id: Some(dev.id.to_string()),
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap();
        let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["user.disable", "user.create"]);
        assert_eq!(events[0].request_id, "r6");
        assert_eq!(events[0].details["revoked_api_keys"], 1);

        let suspended = db
            .platform()
            .set_tenant_status(&audit("r7"), &created.tenant.id, TenantStatus::Suspended)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(suspended.status, TenantStatus::Suspended);
        let credential = db
            .platform()
            .api_key_for_authentication("aaaaaaaaaaaa")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(credential.tenant_status, TenantStatus::Suspended);
        assert_eq!(credential.user.id, *owner);
        assert!(
            !format!("{credential:?}").contains("argon2"),
            "the hash leaked into Debug"
        );
    }
}

#[tokio::test]
async fn pages_follow_the_cursor_and_exports_hold_everything_without_hashes() {
    for test in all().await {
        let db = &test.db;
        migrated(db).await;
        let created = db
            .platform()
            .create_tenant_with_owner(&audit("r1"), "acme", "Acme", "ada@acme.test", true, |u| {
                key(u, "aaaaaaaaaaaa")
            })
            .await
            .unwrap();
        let store = db.tenant(&created.tenant.id);
        for i in 0..7 {
            store
                .create_user(
                    &audit("r2"),
                    NewUser {
                        email: format!("u{i}@acme.test"),
                        display_name: String::new(),
                        roles: vec![Role::Viewer],
                        is_platform_admin: false,
                    },
                )
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store.list_users(cursor.as_deref(), 3).await.unwrap();
            seen.extend(page.iter().map(|u| u.email.clone()));
            if page.len() < 3 {
                break;
            }
            cursor = page.last().map(|u| u.id.to_string());
        }
        assert_eq!(seen.len(), 8, "{seen:?}");
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 8, "no user twice");

        let export = store.export().await.unwrap().unwrap();
        assert_eq!(export.users.len(), 8);
        assert_eq!(export.api_keys.len(), 1);
        assert_eq!(export.audit_events.len(), 10);
        let text = serde_json::to_string(&export).unwrap();
        assert!(
            !text.contains("argon2"),
            "an export must not carry key hashes"
        );
    }
}

#[tokio::test]
async fn two_owners_removing_each_other_at_once_leave_one_owner() {
    for test in all().await {
        let db = &test.db;
        migrated(db).await;
        for round in 0..8 {
            let created = db
                .platform()
                .create_tenant_with_owner(
                    &audit("r1"),
                    &format!("acme{round}"),
                    "Acme",
                    "ada@acme.test",
                    false,
                    |u| key(u, &format!("race{round:08}")),
                )
                .await
                .unwrap();
            let tenant = created.tenant.id.clone();
            let ada = created.owner.id.clone();
            let bob = db
                .tenant(&tenant)
                .create_user(
                    &audit("r2"),
                    NewUser {
                        email: "bob@acme.test".into(),
                        display_name: "Bob".into(),
                        roles: vec![Role::Owner],
                        is_platform_admin: false,
                    },
                )
                .await
                .unwrap()
                .id;
            // Ada demotes Bob while Bob demotes (odd rounds: disables) Ada.
            let ada_acts = {
                let (db, tenant) = (db.clone(), tenant.clone());
                tokio::spawn(async move {
                    db.tenant(&tenant)
                        .set_roles(&audit("r3"), &bob, &[Role::Admin])
                        .await
                        .map(|_| ())
                })
            };
            let bob_acts = {
                let (db, tenant, ada) = (db.clone(), tenant.clone(), ada.clone());
                tokio::spawn(async move {
                    let store = db.tenant(&tenant);
                    if round % 2 == 0 {
                        store.set_roles(&audit("r3"), &ada, &[Role::Admin]).await
                    } else {
                        store.disable_user(&audit("r3"), &ada).await
                    }
                    .map(|_| ())
                })
            };
            let (a, b) = (ada_acts.await.unwrap(), bob_acts.await.unwrap());
            let what = format!(
                "{} round {round}: {a:?} and {b:?}",
                test.db.backend().name()
            );
            assert!(a.is_ok() != b.is_ok(), "exactly one wins: {what}");
            assert!(
                matches!(a.or(b), Ok(()) | Err(StoreError::Conflict(_))),
                "{what}"
            );
            let owners = db
                .tenant(&tenant)
                .list_users(None, 10)
                .await
                .unwrap()
                .into_iter()
                .filter(|u| u.status == UserStatus::Active && u.roles.contains(&Role::Owner))
                .count();
            assert_eq!(owners, 1, "{what}");
        }
    }
}
