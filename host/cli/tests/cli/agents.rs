//! `omniforge workflow validate` and `omniforge agent …` as a user meets them: YAML and JSON
//! files, a real server, real published skills.

use omniforge_test_programs as programs;
use serde_json::Value;

use crate::server_cli::ServerCli;
use crate::{ok, omniforge_in, stderr, stdout_text};

const PIPELINE: &str = r#"
name: greeter
description: Greets, then greets the greeting
workflow:
  steps:
    - id: first
      kind: skill
      skill: acme/hello
      input: { name: "${input.who}" }
    - id: second
      kind: skill
      skill: acme/hello
      version: "^1"
      input: { name: "${steps.first.output.greeting}" }
  output: "${steps.second.output}"
card:
  skills:
    - { id: greet, name: Greet twice }
"#;

fn json_of(output: &std::process::Output) -> Value {
    serde_json::from_str(&stdout_text(output)).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} (stderr: {})",
            stdout_text(output),
            stderr(output)
        );
    })
}

#[test]
fn a_workflow_file_is_checked_locally_with_the_step_and_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("pipeline.yaml");
    let workflow = PIPELINE
        .split_once("workflow:\n")
        .unwrap()
        .1
        .split_once("card:")
        .unwrap()
        .0
        .lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&good, &workflow).unwrap();
    let valid = omniforge_in(
        dir.path(),
        &["workflow", "validate", good.to_str().unwrap()],
    );
    let said = ok(&valid, "validate");
    assert!(
        said.contains("valid (2 steps, 2 skill steps, 0 agent steps)"),
        "{said}"
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"steps": [{"id": "a", "kind": "parallel", "join": {"quorum": 3},
            "branches": [{"id": "b", "kind": "skill", "skill": "acme/hello", "input": "${steps.a.output}"}]}]}"#,
    )
    .unwrap();
    let refused = omniforge_in(dir.path(), &["workflow", "validate", bad.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let told = stderr(&refused);
    assert!(
        told.contains("step \"a\", /steps/0/join: a quorum"),
        "{told}"
    );
    assert!(
        told.contains("step \"b\", /steps/0/branches/0/input: steps.a is not available"),
        "{told}"
    );
    assert!(told.contains("2 problem(s)"), "{told}");
}

#[test]
fn agents_are_created_updated_relocked_and_deleted_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, cli) = ServerCli::start(dir.path());
    cli.publish_wasm(&cli.key, "acme/hello", programs::HELLO, "", "");
    let file = cli.dir.join("greeter.yaml");
    std::fs::write(&file, PIPELINE).unwrap();
    let file = file.to_str().unwrap();

    let created = json_of(&cli.run(&["agent", "create", file]));
    assert_eq!(created["version"], 1, "{created}");
    assert_eq!(created["lock"][0]["skill"], "acme/hello");
    assert_eq!(created["lock"][0]["version"], "1.0.0");
    assert_eq!(created["card"]["skills"][0]["id"], "greet");
    let id = created["id"].as_str().unwrap().to_owned();

    // The same name again: refused, exit 2, the server's reason on stderr.
    let again = cli.run(&["agent", "create", file]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("409"), "{}", stderr(&again));

    // A definition naming a skill the tenant cannot use: every problem is printed.
    let broken = cli.dir.join("broken.json");
    std::fs::write(
        &broken,
        r#"{"name": "broken", "workflow": {"steps": [
            {"id": "x", "kind": "skill", "skill": "acme/nope"},
            {"id": "y", "kind": "skill", "skill": "acme/nothing"}]}}"#,
    )
    .unwrap();
    let refused = cli.run(&["agent", "create", broken.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    let told = stderr(&refused);
    assert!(
        told.contains("step \"x\", /workflow/steps/0/skill"),
        "{told}"
    );
    assert!(
        told.contains("step \"y\", /workflow/steps/1/skill"),
        "{told}"
    );

    // Update: reads the version, sends it as If-Match; a stale --if-version loses.
    let updated = json_of(&cli.run(&["agent", "update", &id, file]));
    assert_eq!(updated["version"], 2);
    let stale = cli.run(&["agent", "update", &id, file, "--if-version", "1"]);
    assert_eq!(stale.status.code(), Some(2));
    assert!(stderr(&stale).contains("412"), "{}", stderr(&stale));

    let listed = json_of(&cli.run(&["agent", "list", "--skill", "acme/hello"]));
    assert_eq!(listed["items"][0]["id"], id.as_str());
    let lock = json_of(&cli.run(&["agent", "lock", &id]));
    assert_eq!(lock["version"], 2);
    let relocked = json_of(&cli.run(&["agent", "relock", &id]));
    assert_eq!(relocked["version"], 3);
    let fetched = json_of(&cli.run(&["agent", "get", &id]));
    assert_eq!(fetched["name"], "greeter");

    ok(
        &cli.run(&["agent", "delete", &id, "--if-version", "3"]),
        "delete",
    );
    let gone = cli.run(&["agent", "get", &id]);
    assert_eq!(gone.status.code(), Some(2));
    assert!(stderr(&gone).contains("404"), "{}", stderr(&gone));
}
