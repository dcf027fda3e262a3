//! Keys never carry more than whoever minted them: the creator role × target role × requested
//! scopes matrix, the review's two escalations replayed, and who the audit log names.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestApp, all};

/// The permissions each role grants, as docs/auth.md lists them (owners of acme also hold
/// `tenant:manage`: acme's owner is the platform admin).
fn role_permissions(role: &str) -> BTreeSet<&'static str> {
    let all = [
        ("tenant:read", "OADPV"),
        ("tenant:export", "O"),
        ("user:read", "OADPV"),
        ("user:manage", "OA"),
        ("owner:manage", "O"),
        ("apikey:manage", "OADP"),
        ("audit:read", "OAP"),
        ("secret:manage", "OA"),
        ("skill:read", "OADPV"),
        ("skill:publish", "OAD"),
        ("skill:invoke", "OADP"),
        ("agent:read", "OADPV"),
        ("agent:write", "OAD"),
        ("task:read", "OADPV"),
        ("task:write", "OADP"),
    ];
    let letter = match role {
        "owner" => 'O',
        "admin" => 'A',
        "developer" => 'D',
        "operator" => 'P',
        "viewer" => 'V',
        other => panic!("{other}"),
    };
    all.iter()
        .filter(|(_, holders)| holders.contains(letter))
        .map(|(p, _)| *p)
        .collect()
}

fn permissions_of(me: &Value) -> BTreeSet<String> {
    me["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

struct Member {
    role: &'static str,
    id: String,
    /// A key the owner minted for them: everything their role gives.
    key: String,
}

async fn member(app: &TestApp, role: &'static str) -> Member {
    let user = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&app.acme.key),
            Some(json!({"email": format!("{role}@acme.test"), "roles": [role]})),
        )
        .await
        .expect(201, "create a member")
        .clone();
    let id = user["id"].as_str().unwrap().to_owned();
    let key = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&app.acme.key),
            Some(json!({"name": role, "user_id": id})),
        )
        .await
        .expect(201, "the owner mints the member's key")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    Member { role, id, key }
}

async fn me(app: &TestApp, key: &str) -> Value {
    app.call(Method::GET, "/api/v1/me", Some(key), None)
        .await
        .expect(200, "me")
        .clone()
}

#[tokio::test]
async fn minted_keys_never_carry_more_than_their_creator_holds() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let owner = Member {
            role: "owner",
            id: app.acme.owner_id.clone(),
            key: app.acme.key.clone(),
        };
        let mut members = vec![owner];
        for role in ["admin", "developer", "operator", "viewer"] {
            members.push(member(&app, role).await);
        }
        let requests: [&[&str]; 5] = [
            &["*"],
            &["tenant:manage"],
            &["user:manage"],
            &["skill:read"],
            &["owner:manage", "user:manage"],
        ];
        let mut checked = 0;
        for creator in members.iter().filter(|m| m.role != "viewer") {
            let creator_holds = permissions_of(&me(&app, &creator.key).await);
            for target in &members {
                for requested in requests {
                    let label = format!("{} mints {requested:?} for {}", creator.role, target.role);
                    let answer = app
                        .call(
                            Method::POST,
                            "/api/v1/api-keys",
                            Some(&creator.key),
                            Some(json!({"name": "m", "scopes": requested, "user_id": target.id})),
                        )
                        .await;
                    let other_user = target.id != creator.id;
                    let wildcard = requested == ["*"];
                    let exceeds =
                        !wildcard && requested.iter().any(|p| !creator_holds.contains(*p));
                    if (other_user && !creator_holds.contains("user:manage")) || exceeds {
                        answer.expect(403, &label);
                        continue;
                    }
                    let mut target_gives = role_permissions(target.role);
                    if target.role == "owner" {
                        target_gives.insert("tenant:manage");
                    }
                    let expected: BTreeSet<String> = target_gives
                        .iter()
                        .filter(|p| creator_holds.contains(**p))
                        .filter(|p| wildcard || requested.contains(p))
                        .map(|p| p.to_string())
                        .collect();
                    if expected.is_empty() {
                        answer.expect(422, &label);
                        continue;
                    }
                    let key = answer.expect(201, &label)["key"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                    let holds = permissions_of(&me(&app, &key).await);
                    assert_eq!(holds, expected, "{label}");
                    assert!(holds.is_subset(&creator_holds), "{label}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 20, "only {checked} keys were minted");
    }
}

#[tokio::test]
async fn an_admin_cannot_borrow_the_owners_powers_through_a_minted_key() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let admin = member(&app, "admin").await;
        let owner = &app.acme.owner_id;
        // A `*` key for the owner (the platform admin) carries only what the admin holds.
        let star = app
            .call(
                Method::POST,
                "/api/v1/api-keys",
                Some(&admin.key),
                Some(json!({"name": "for-owner", "user_id": owner})),
            )
            .await
            .expect(201, "an admin mints a key for the owner")
            .clone();
        assert_ne!(star["api_key"]["scopes"], json!(["*"]));
        let star = star["key"].as_str().unwrap();
        app.call(Method::GET, "/api/v1/tenants", Some(star), None)
            .await
            .expect(403, "listing tenants needs tenant:manage");
        let globex_export = format!("/api/v1/tenants/{}/export", app.globex.id);
        app.call(Method::GET, &globex_export, Some(star), None)
            .await
            .expect(403, "exporting needs tenant:export");

        // A `user:manage` key for the owner cannot make the admin an owner.
        let manage = app
            .call(
                Method::POST,
                "/api/v1/api-keys",
                Some(&admin.key),
                Some(json!({"name": "um", "scopes": ["user:manage"], "user_id": owner})),
            )
            .await
            .expect(201, "a user:manage key for the owner")["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let roles = format!("/api/v1/users/{}/roles", admin.id);
        let refused = app
            .call(
                Method::PUT,
                &roles,
                Some(&manage),
                Some(json!({"roles": ["owner"]})),
            )
            .await;
        assert_eq!(
            refused.expect(403, "granting ownership")["permission"],
            "owner:manage"
        );
        // What it may do is recorded as done with a key the admin minted.
        app.call(
            Method::PUT,
            &roles,
            Some(&manage),
            Some(json!({"roles": ["admin", "developer"]})),
        )
        .await
        .expect(200, "an allowed role change");
        let events = app
            .call(
                Method::GET,
                "/api/v1/audit-events?action=user.set_roles",
                Some(&app.acme.key),
                None,
            )
            .await
            .expect(200, "audit")
            .clone();
        let actor = events["items"][0]["actor"].as_str().unwrap().to_owned();
        assert!(actor.starts_with(&format!("user:{owner} key:")), "{actor}");
        assert!(
            actor.ends_with(&format!(" minted-by:user:{}", admin.id)),
            "{actor}"
        );
        let minted = app
            .call(
                Method::GET,
                "/api/v1/audit-events?action=api_key.create",
                Some(&app.acme.key),
                None,
            )
            .await
            .expect(200, "audit")
            .clone();
        let by_admin = minted["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["details"]["user_id"] == json!(owner))
            .expect("the mint is recorded");
        assert!(
            by_admin["actor"]
                .as_str()
                .unwrap()
                .starts_with(&format!("user:{} ", admin.id))
        );
        assert_eq!(by_admin["details"]["created_by"], json!(admin.id));

        // Nor can the admin lock the owner out by revoking the owner's own key.
        let owner_key_id = me(&app, &app.acme.key).await["api_key_id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{owner_key_id}"),
            Some(&admin.key),
            None,
        )
        .await
        .expect(403, "an admin revoking the owner's key");
        me(&app, &app.acme.key).await;
        // The owner may revoke the admin's.
        let admin_key_id = me(&app, &admin.key).await["api_key_id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{admin_key_id}"),
            Some(&app.acme.key),
            None,
        )
        .await
        .expect(200, "the owner revokes the admin's key");
    }
}

#[tokio::test]
async fn a_scoped_key_cannot_mint_a_wider_one_for_itself() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let (narrow, _) = app.scoped_key(&["apikey:manage", "skill:read"]).await;
        let minted = app
            .call(
                Method::POST,
                "/api/v1/api-keys",
                Some(&narrow),
                Some(json!({"name": "wider", "scopes": ["*"]})),
            )
            .await
            .expect(201, "a * key from a scoped key")
            .clone();
        assert_eq!(
            minted["api_key"]["scopes"],
            json!(["apikey:manage", "skill:read"])
        );
        let key = minted["key"].as_str().unwrap();
        assert_eq!(
            permissions_of(&me(&app, key).await),
            ["apikey:manage", "skill:read"]
                .into_iter()
                .map(String::from)
                .collect::<BTreeSet<_>>()
        );
        // The owner's own unscoped key still mints `*`, which follows the owner's roles.
        let (star, _) = app.scoped_key(&["*"]).await;
        assert!(permissions_of(&me(&app, &star).await).contains("tenant:manage"));
    }
}
