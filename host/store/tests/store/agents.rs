//! Agents on both engines: versions count saves and a stale write loses; every version keeps
//! its definition and lockfile; pins show yanks and deletions; listings filter, sort and page;
//! deletion is soft and frees the name; other tenants see nothing.

use omniforge_store::{
    AgentFilter, AgentSort, AgentStatus, AuditContext, Database, NewAgent, NewPin, NewVersion,
    Saved, TenantId,
};
use omniforge_types::Sha256Digest;
use serde_json::json;

use crate::common::{all, skill_name};

async fn publish(
    db: &Database,
    tenant: &TenantId,
    name: &str,
    version: &str,
) -> (String, Sha256Digest) {
    let audit = AuditContext::system("test", "agents");
    let digest = Sha256Digest::of(format!("{name}@{version}").as_bytes());
    let (skill, stored) = db
        .tenant(tenant)
        .publish(
            &audit,
            NewVersion {
                namespace: "acme".into(),
                name: name.into(),
                version: version.parse().unwrap(),
                description: String::new(),
                keywords: vec![],
                categories: vec![],
                permissions: vec![],
                readme: String::new(),
                package_sha256: digest,
                component_sha256: digest,
                manifest: "{}".into(),
                input_schema: None,
                output_schema: None,
                size_bytes: 1,
                signature_key_id: None,
                published_by: "test".into(),
            },
        )
        .await
        .unwrap();
    (skill.id, stored.component_sha256)
}

fn agent(name: &str, pins: Vec<NewPin>) -> NewAgent {
    NewAgent {
        name: name.into(),
        description: format!("the {name} agent"),
        public: false,
        definition: json!({"workflow": {"steps": []}, "name": name}),
        pins,
    }
}

fn pin(skill: &str, skill_id: &str, version: &str, digest: Sha256Digest) -> NewPin {
    NewPin {
        skill: skill_name(skill),
        requirement: "^1".into(),
        skill_id: skill_id.into(),
        version: version.parse().unwrap(),
        digest,
    }
}

fn filter() -> AgentFilter {
    AgentFilter {
        skill: None,
        status: None,
        sort: AgentSort::Name,
        descending: false,
        after: None,
        limit: 50,
    }
}

#[tokio::test]
async fn agents_keep_every_version_lose_stale_writes_and_flag_yanked_pins() {
    for test in all().await {
        let db = &test.db;
        db.migrate().await.unwrap();
        let audit = AuditContext::system("test", "agents");
        let acme = db
            .platform()
            .create_tenant(&audit, "acme", "Acme")
            .await
            .unwrap()
            .id;
        let other = db
            .platform()
            .create_tenant(&audit, "other", "Other")
            .await
            .unwrap()
            .id;
        let store = db.tenant(&acme);
        let (hello_id, hello_digest) = publish(db, &acme, "hello", "1.0.0").await;
        let (stats_id, stats_digest) = publish(db, &acme, "stats", "1.2.0").await;

        let created = store
            .create_agent(
                &audit,
                &agent(
                    "greeter",
                    vec![pin("acme/hello", &hello_id, "1.0.0", hello_digest)],
                ),
            )
            .await
            .unwrap();
        assert_eq!(created.version, 1);
        assert_eq!(created.pins.len(), 1);
        assert!(!created.has_warnings());
        assert_eq!(created.definition["name"], "greeter");
        let taken = store
            .create_agent(&audit, &agent("greeter", vec![]))
            .await
            .unwrap_err();
        assert!(taken.to_string().contains("exists"), "{taken}");

        // Two writers read version 1: the first wins, the second learns the version now.
        let renamed = agent(
            "welcomer",
            vec![pin("acme/stats", &stats_id, "1.2.0", stats_digest)],
        );
        let Saved::Done(updated) = store
            .update_agent(&audit, &created.id, 1, &renamed, "agent.update")
            .await
            .unwrap()
        else {
            panic!("the first update wins")
        };
        assert_eq!((updated.version, updated.name.as_str()), (2, "welcomer"));
        assert_eq!(updated.pins[0].skill, skill_name("acme/stats"));
        assert!(matches!(
            store
                .update_agent(&audit, &created.id, 1, &renamed, "agent.update")
                .await
                .unwrap(),
            Saved::Stale(2)
        ));
        // Version 1 is still there for the runs that started on it.
        let first = store.agent_version(&created.id, 1).await.unwrap().unwrap();
        assert_eq!((first.name.as_str(), first.version), ("welcomer", 1));
        assert_eq!(first.definition["name"], "greeter");
        assert_eq!(first.pins[0].skill, skill_name("acme/hello"));

        // A yanked pin shows on the agent and in the status filter.
        store
            .set_yanked(&audit, &stats_id, "1.2.0", true)
            .await
            .unwrap()
            .unwrap();
        let warned = store.agent(&created.id).await.unwrap().unwrap();
        assert!(warned.pins[0].yanked && warned.has_warnings());
        store
            .create_agent(
                &audit,
                &agent(
                    "second",
                    vec![pin("acme/hello", &hello_id, "1.0.0", hello_digest)],
                ),
            )
            .await
            .unwrap();
        let names = |agents: Vec<omniforge_store::Agent>| -> Vec<String> {
            agents.into_iter().map(|a| a.name).collect()
        };
        let listed = |f: AgentFilter| async move { names(store.list_agents(&f).await.unwrap()) };
        assert_eq!(listed(filter()).await, ["second", "welcomer"]);
        assert_eq!(
            listed(AgentFilter {
                status: Some(AgentStatus::Warning),
                ..filter()
            })
            .await,
            ["welcomer"]
        );
        assert_eq!(
            listed(AgentFilter {
                status: Some(AgentStatus::Ready),
                ..filter()
            })
            .await,
            ["second"]
        );
        assert_eq!(
            listed(AgentFilter {
                skill: Some(skill_name("acme/hello")),
                ..filter()
            })
            .await,
            ["second"]
        );
        assert_eq!(
            listed(AgentFilter {
                sort: AgentSort::Created,
                descending: true,
                ..filter()
            })
            .await,
            ["second", "welcomer"]
        );
        // Pages of one, by name, then by creation time.
        for sort in [AgentSort::Name, AgentSort::Created] {
            let mut seen = Vec::new();
            let mut page = AgentFilter {
                sort,
                limit: 1,
                ..filter()
            };
            loop {
                let agents = store.list_agents(&page).await.unwrap();
                let Some(last) = agents.last() else { break };
                page.after = Some(page.cursor_after(last));
                seen.extend(names(agents));
            }
            let expected = match sort {
                AgentSort::Name => ["second", "welcomer"],
                AgentSort::Created => ["welcomer", "second"],
            };
            assert_eq!(seen, expected, "{sort}");
        }
        assert_eq!(store.agent_definitions().await.unwrap().len(), 2);

        // Another tenant sees none of it.
        let theirs = db.tenant(&other);
        assert!(theirs.agent(&created.id).await.unwrap().is_none());
        assert!(
            theirs
                .agent_version(&created.id, 1)
                .await
                .unwrap()
                .is_none()
        );
        assert!(theirs.list_agents(&filter()).await.unwrap().is_empty());
        assert!(matches!(
            theirs
                .update_agent(&audit, &created.id, 2, &renamed, "agent.update")
                .await
                .unwrap(),
            Saved::NotFound
        ));
        assert!(matches!(
            theirs
                .delete_agent(&audit, &created.id, None)
                .await
                .unwrap(),
            Saved::NotFound
        ));

        // Deleting: a stale version loses, then it is gone and its name is free.
        assert!(matches!(
            store
                .delete_agent(&audit, &created.id, Some(1))
                .await
                .unwrap(),
            Saved::Stale(2)
        ));
        assert!(matches!(
            store
                .delete_agent(&audit, &created.id, Some(2))
                .await
                .unwrap(),
            Saved::Done(())
        ));
        assert!(store.agent(&created.id).await.unwrap().is_none());
        assert!(store.agent_named("welcomer").await.unwrap().is_none());
        assert!(store.agent_version(&created.id, 2).await.unwrap().is_some());
        assert_eq!(listed(filter()).await, ["second"]);
        store
            .create_agent(&audit, &agent("welcomer", vec![]))
            .await
            .unwrap();

        // The export holds every agent, deleted ones too, with every version and its pins.
        let export = store.export().await.unwrap().unwrap();
        let exported: Vec<(&str, bool, usize)> = export
            .agents
            .iter()
            .map(|a| (a.name.as_str(), a.deleted_at_ms.is_some(), a.versions.len()))
            .collect();
        assert_eq!(
            exported,
            [
                ("welcomer", true, 2),
                ("second", false, 1),
                ("welcomer", false, 1)
            ]
        );
        assert_eq!(export.agents[0].versions[0].definition["name"], "greeter");
        assert_eq!(
            export.agents[0].versions[0].pins[0].skill,
            skill_name("acme/hello")
        );
        assert!(
            db.tenant(&other)
                .export()
                .await
                .unwrap()
                .unwrap()
                .agents
                .is_empty()
        );

        let actions: Vec<String> = store
            .list_audit_events(&omniforge_store::AuditFilter {
                limit: 200,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .filter(|a| a.starts_with("agent."))
            .collect();
        assert_eq!(
            actions.iter().filter(|a| *a == "agent.create").count(),
            3,
            "{actions:?}"
        );
        assert!(actions.contains(&"agent.update".to_owned()));
        assert!(actions.contains(&"agent.delete".to_owned()));
    }
}
