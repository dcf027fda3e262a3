//! Skills calling skills (`omniforge:skill/skills`) against the real binary: published
//! packages, REST invocations, two tenants. The `relay` guest, published under several names
//! with different grants, forms chains, cycles and calls of what it was not granted; the
//! `text-report` (Rust) and `outline` (Python) examples compose two real example skills, and
//! the example agents (`example-agents/`) compose them in workflows.

use std::path::{Path, PathBuf};
use std::process::Output;

use omniforge_test_programs as programs;
use serde_json::{Value, json};

use crate::examples::{ServerCli, answers_its_cases, copy_example, toolchain};
use crate::server::{Running, http};
use crate::{bootstrap_tenant, ok, omniforge_env, omniforge_in, stderr};

/// A running server with tenant `acme` (namespace `chain`) and tenant `other`.
struct World {
    _server: Running,
    cli: ServerCli,
    port: u16,
    other_key: String,
}

impl World {
    fn start(dir: &Path) -> Self {
        let (server, cli) = ServerCli::start(dir);
        let other_key = bootstrap_tenant(dir, "other", "bob@other.test");
        Self {
            port: server.port,
            _server: server,
            cli,
            other_key,
        }
    }

    /// Packs `wasm` as `name` `version` with the manifest lines `extra` and publishes it as
    /// the tenant of `key`.
    fn publish(&self, key: &str, name: &str, version: &str, wasm: &str, extra: &str) {
        let world = if extra.contains("skills =") {
            "skill"
        } else {
            "tool"
        };
        let stem = format!("{}-{version}", name.replace('/', "-"));
        let project = self.cli.dir.join("packages").join(&stem);
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(
            project.join("omniforge.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"{version}\"\n\
                 description = \"composition test\"\nlicense = \"MIT\"\n\n\
                 [skill]\nworld = \"{world}\"\ncomponent = \"skill.wasm\"\n\n{extra}\n"
            ),
        )
        .unwrap();
        let package = self.cli.dir.join("packages").join(format!("{stem}.zip"));
        let packed = omniforge_in(
            &self.cli.dir,
            &[
                "skill",
                "pack",
                project.to_str().unwrap(),
                "--component",
                wasm,
                "-o",
                package.to_str().unwrap(),
            ],
        );
        ok(&packed, &format!("pack {name}"));
        let published = omniforge_env(
            &self.cli.dir,
            &[
                "skill",
                "publish",
                package.to_str().unwrap(),
                "--server",
                &self.cli.url,
            ],
            &[("OMNIFORGE_API_KEY", key)],
        );
        ok(&published, &format!("publish {name} {version}"));
    }

    /// `POST /api/v1/skills/{name}/invoke` as `key`; the status and the answer.
    fn invoke(&self, key: &str, name: &str, input: Value) -> (u16, Value) {
        let (status, body) = http(
            self.port,
            "POST",
            &format!("/api/v1/skills/{name}/invoke"),
            Some(key),
            Some(&json!({ "input": input }).to_string()),
        );
        let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
        (status, body)
    }

    fn invocations(&self) -> i64 {
        let (status, body) = http(self.port, "GET", "/api/v1/usage", Some(&self.cli.key), None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["invocations"]
            .as_i64()
            .unwrap()
    }
}

/// The manifest lines granting `callees` (each at `^1`), with a fuel limit.
fn grants(callees: &[&str], fuel: u64) -> String {
    let list: Vec<String> = callees
        .iter()
        .map(|c| format!("\"{c}\" = \"^1\""))
        .collect();
    format!(
        "[permissions]\nskills = {{ {} }}\n\n[limits]\nfuel = {fuel}\n",
        list.join(", ")
    )
}

#[test]
fn skills_call_skills_within_grants_depth_cycles_budgets_quotas_and_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(dir.path());
    let key = world.cli.key.clone();
    let relay = programs::RELAY;
    let fuel = 400_000_000;
    world.publish(
        &key,
        "chain/a",
        "1.0.0",
        relay,
        &grants(&["chain/b", "chain/spin", "other/secret"], fuel),
    );
    world.publish(&key, "chain/b", "1.0.0", relay, &grants(&["chain/a"], fuel));
    world.publish(&key, "chain/b", "2.0.0", relay, &grants(&["chain/a"], fuel));
    world.publish(&key, "chain/spin", "1.0.0", programs::SPIN_LOOP, "");
    for i in 1..=9 {
        let next = format!("chain/r{}", i % 9 + 1);
        world.publish(
            &key,
            &format!("chain/r{i}"),
            "1.0.0",
            relay,
            &grants(&[&next], fuel),
        );
    }
    world.publish(
        &world.other_key,
        "other/secret",
        "1.0.0",
        programs::HELLO,
        "",
    );

    // A calls B (granted, ^1: 1.0.0, not 2.0.0) and gets B's output.
    let (status, answer) = world.invoke(&key, "chain/a", json!({ "chain": ["chain/b"] }));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["output"],
        json!({ "via": "chain/a", "answer": { "end": "chain/b" } })
    );
    assert_eq!(answer["version"], "1.0.0");
    assert_eq!(answer["usage"]["skill_calls"], 1, "{answer}");
    // A call narrows the manifest's requirement; nothing matches both ^1 and =2.0.0.
    let (status, answer) = world.invoke(
        &key,
        "chain/a",
        json!({ "chain": ["chain/b"], "requirement": "=2.0.0", "catch": true }),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["output"]["error"]["kind"], "not-found", "{answer}");

    // A skill it was not granted: denied, and the caller's error passes through to REST.
    let (status, answer) = world.invoke(&key, "chain/a", json!({ "chain": ["chain/r1"] }));
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["type"], "https://omniforge.dev/problems/skill-error");
    assert_eq!(answer["kind"], "denied");
    assert!(
        answer["detail"].as_str().unwrap().contains("not granted"),
        "{answer}"
    );

    // A → B → A: refused as a cycle, at B's call.
    let (status, answer) = world.invoke(
        &key,
        "chain/a",
        json!({ "chain": ["chain/b", "chain/a"], "catch": true }),
    );
    assert_eq!(status, 200, "{answer}");
    let error = &answer["output"]["answer"]["error"];
    assert_eq!(error["kind"], "denied", "{answer}");
    assert!(
        error["message"].as_str().unwrap().contains("cycle"),
        "{answer}"
    );

    // Depth 8 runs; depth 9 is refused (skills.max_depth = 8).
    let chain = |n: usize| -> Vec<String> { (2..=n).map(|i| format!("chain/r{i}")).collect() };
    let (status, answer) = world.invoke(&key, "chain/r1", json!({ "chain": chain(8) }));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["usage"]["skill_calls"], 7, "{answer}");
    let mut innermost = &answer["output"];
    while innermost.get("answer").is_some() {
        innermost = &innermost["answer"];
    }
    assert_eq!(innermost["end"], "chain/r8");
    let (status, answer) = world.invoke(&key, "chain/r1", json!({ "chain": chain(9) }));
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["kind"], "denied");
    assert!(
        answer["detail"].as_str().unwrap().contains("9 skills deep"),
        "{answer}"
    );

    // A callee that loops forever is stopped by what its caller had left, and the caller,
    // keeping a reserve, sees `failed` and answers.
    let (status, answer) = world.invoke(
        &key,
        "chain/a",
        json!({ "chain": ["chain/spin"], "tail": {}, "catch": true }),
    );
    assert_eq!(status, 200, "{answer}");
    let error = &answer["output"]["error"];
    assert_eq!(error["kind"], "failed", "{answer}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("fuel_exhausted"),
        "{answer}"
    );
    let used = answer["usage"]["fuel"].as_u64().unwrap();
    assert!(
        used > fuel * 9 / 10 && used <= fuel,
        "the tree burned {used} of the caller's {fuel}"
    );

    // Quotas count every invocation of the tree.
    let before = world.invocations();
    let (status, answer) = world.invoke(
        &key,
        "chain/r1",
        json!({ "chain": ["chain/r2", "chain/r3"] }),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(world.invocations() - before, 3);

    // Another tenant's private skill is not reachable through a call either.
    let (status, answer) = world.invoke(
        &key,
        "chain/a",
        json!({ "chain": ["other/secret"], "tail": { "name": "x" }, "catch": true }),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["output"]["error"]["kind"], "not-found", "{answer}");
    let (status, _) = world.invoke(&key, "other/secret", json!({ "name": "x" }));
    assert_eq!(status, 404);
    let (status, answer) = world.invoke(&world.other_key, "other/secret", json!({ "name": "x" }));
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn a_component_built_against_wit_0_1_0_still_publishes_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(dir.path());
    world.publish(
        &world.cli.key,
        "chain/legacy",
        "1.0.0",
        programs::LEGACY_HELLO,
        "",
    );
    let package = dir.path().join("packages/chain-legacy-1.0.0.zip");
    let inspect = omniforge_in(
        dir.path(),
        &["skill", "inspect", "--json", package.to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&inspect.stdout).into_owned();
    assert!(
        text.contains("omniforge:skill/handler@0.1.0"),
        "{text}{}",
        stderr(&inspect)
    );
    let (status, answer) = world.invoke(&world.cli.key, "chain/legacy", json!({ "name": "Ada" }));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["output"], json!({ "greeting": "Hello, Ada!" }));
}

/// The composing examples, in Rust (`text-report`) and Python (`outline`), over the skills
/// they call, published from source and checked with their tests.json over REST; then the
/// example agents over them, saved and run through the CLI with their tests.json.
#[test]
fn the_composing_examples_and_the_example_agents_answer_their_cases() {
    if !toolchain("componentize-py", "pip install componentize-py==0.25.1") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let projects: Vec<PathBuf> = [
        ("python", "markdown-to-text"),
        ("rust", "text-stats"),
        ("rust", "text-report"),
        ("python", "outline"),
        ("rust", "hello"),
    ]
    .iter()
    .map(|(language, name)| copy_example(language, name, dir.path()))
    .collect();
    let cargo_target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skill-projects");
    for project in &projects {
        ok(
            &omniforge_env(
                project,
                &["skill", "build"],
                &[("CARGO_TARGET_DIR", cargo_target.to_str().unwrap())],
            ),
            &format!("build {}", project.display()),
        );
    }
    let (_server, cli) = ServerCli::start(dir.path());
    let cli = |args: &[&str]| cli.run(args);
    for project in &projects {
        ok(
            &cli(&["skill", "publish", project.to_str().unwrap()]),
            &format!("publish {}", project.display()),
        );
    }
    answers_its_cases(&cli, &projects[2]);
    answers_its_cases(&cli, &projects[3]);
    // In this order: report-desk runs document-digest as a child.
    for agent in ["document-digest", "team-greeter", "report-desk"] {
        example_agent_answers_its_cases(&cli, agent);
    }
}

/// Saves `example-agents/<name>` through `cli` and runs each case of its tests.json to the
/// output it names.
fn example_agent_answers_its_cases(cli: &dyn Fn(&[&str]) -> Output, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../example-agents")
        .join(name);
    let created = ok(
        &cli(&["agent", "create", dir.join("agent.yaml").to_str().unwrap()]),
        &format!("create {name}"),
    );
    let agent: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(agent["warnings"], json!([]), "{agent}");
    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        input: Value,
        output: Value,
    }
    let cases: Vec<Case> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tests.json")).unwrap()).unwrap();
    for case in cases {
        let what = format!("{name}: {}", case.name);
        let id = agent["id"].as_str().unwrap();
        let run = ok(
            &cli(&["agent", "run", id, "--input", &case.input.to_string()]),
            &what,
        );
        let run: Value = serde_json::from_str(&run).unwrap();
        let task = run["id"].as_str().unwrap();
        ok(&cli(&["task", "watch", task]), &what);
        let ended: Value = serde_json::from_str(&ok(&cli(&["task", "get", task]), &what)).unwrap();
        assert_eq!(ended["state"], "completed", "{what}: {ended}");
        assert_eq!(ended["output"], case.output, "{what}");
    }
}
