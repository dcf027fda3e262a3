//! Documents as users write them: every step kind, and the problems a mistake gets.

use serde_json::{Value, json};

use crate::document::{Join, Step};
use crate::expr::template_expression;
use crate::parse::{Format, from_value, plan, value_of};
use crate::schema::json_schema;
use crate::validate::{Problem, check};

/// Every step kind, as a user would write it in YAML.
const EVERY_KIND: &str = r#"
steps:
  - id: stats
    kind: skill
    skill: examples/text-stats
    version: "^0.1"
    input: { text: "${input.text}" }
    retry: { max_attempts: 3, initial_delay_ms: 50, retry_on: [timeout, unavailable] }
    timeout_ms: 2000
  - id: both
    kind: parallel
    join: { quorum: 1 }
    on_failure: continue
    timeout_ms: 5000
    branches:
      - id: plain
        kind: skill
        skill: examples/markdown-to-text
        input: { markdown: "${input.text}" }
      - id: again
        kind: sequence
        steps:
          - { id: hello1, kind: skill, skill: examples/hello, input: { name: "one" } }
          - { id: hello2, kind: skill, skill: examples/hello, input: { name: "${steps.hello1.output.greeting}" } }
  - id: each
    kind: map
    over: "input.names"
    concurrency: 8
    step:
      id: greet
      kind: skill
      skill: examples/hello
      input: { name: "${item + ' #' + string(index)}" }
  - id: route
    kind: switch
    cases:
      - when: "steps.stats.output.words > 100"
        step: { id: long, kind: agent, agent: summarizer, input: { text: "${input.text}" } }
    default: { id: short, kind: skill, skill: examples/hello }
output:
  words: "${steps.stats.output.words}"
  greetings: "${steps.each.output}"
  plain: "${steps.plain.output}"
"#;

fn problems(document: Value) -> Vec<Problem> {
    match from_value(&document) {
        Err(problems) => problems,
        Ok(workflow) => check(workflow).err().unwrap_or_default(),
    }
}

fn one_problem(document: Value) -> Problem {
    let found = problems(document);
    assert_eq!(found.len(), 1, "{found:#?}");
    found.into_iter().next().unwrap()
}

fn skill(id: &str, input: Value) -> Value {
    json!({"id": id, "kind": "skill", "skill": "examples/hello", "input": input})
}

#[test]
fn a_document_with_every_step_kind_reads_checks_and_matches_the_published_schema() {
    let plan = plan(EVERY_KIND, Format::Yaml).unwrap();
    let workflow = plan.workflow();
    let kinds: Vec<&str> = workflow
        .all_steps()
        .iter()
        .map(|s| match s {
            Step::Skill(_) => "skill",
            Step::Sequence(_) => "sequence",
            Step::Parallel(_) => "parallel",
            Step::Map(_) => "map",
            Step::Switch(_) => "switch",
            Step::Agent(_) => "agent",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "skill", "parallel", "skill", "sequence", "skill", "skill", "map", "skill", "switch",
            "agent", "skill"
        ]
    );
    let Step::Parallel(parallel) = &workflow.steps[1] else {
        panic!("a parallel step")
    };
    assert_eq!(parallel.join, Join::Quorum(1));
    assert_eq!(
        workflow.agents().into_iter().collect::<Vec<_>>(),
        ["summarizer"]
    );
    assert_eq!(workflow.skill_steps().count(), 6);
    let pointers: std::collections::HashMap<&str, String> = workflow
        .located_steps()
        .into_iter()
        .map(|(at, step)| (step.id(), at))
        .collect();
    assert_eq!(pointers["hello2"], "/steps/1/branches/1/steps/1");
    assert_eq!(pointers["greet"], "/steps/2/step");
    assert_eq!(pointers["long"], "/steps/3/cases/0/step");
    assert_eq!(pointers["short"], "/steps/3/default");
    assert!(plan.compiled("route").unwrap().conditions.len() == 1);
    assert!(plan.compiled("each").unwrap().over.is_some());

    // The same document as JSON is the same workflow, and the schema accepts it.
    let as_json = serde_json::to_value(workflow).unwrap();
    assert_eq!(&from_value(&as_json).unwrap(), workflow);
    let schema = json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&as_json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        schema["$id"],
        "https://omniforge.dev/api/v1/schemas/workflow.json"
    );
    // The schema refuses what the types refuse.
    assert!(!validator.is_valid(&json!({"steps": [{"id": "a", "kind": "loop"}]})));
    assert!(!validator.is_valid(&json!({"steps": [], "extra": 1})));
}

#[test]
fn a_skill_step_evaluates_its_input_template() {
    let plan = plan(EVERY_KIND, Format::Yaml).unwrap();
    let input = json!({"text": "a b c"});
    let steps = json!({"hello1": {"output": {"greeting": "Hello, one!"}}});
    let rendered = plan
        .compiled("hello2")
        .unwrap()
        .input
        .as_ref()
        .unwrap()
        .render(&[("input", &input), ("steps", &steps)])
        .unwrap();
    assert_eq!(rendered, json!({"name": "Hello, one!"}));
    // A skill step without an input gets the run's.
    let default = plan.compiled("short").unwrap().input.as_ref().unwrap();
    assert_eq!(default.render(&[("input", &input)]).unwrap(), input);
    assert_eq!(template_expression("${input}"), Some("input"));
}

#[test]
fn type_errors_name_the_step_and_the_field() {
    let problem = one_problem(json!({"steps": [
        skill("first", json!({})),
        {"id": "fan", "kind": "parallel", "branches": [
            {"id": "inner", "kind": "skill", "skill": "examples/hello", "retries": 3}
        ]}
    ]}));
    assert_eq!(problem.step.as_deref(), Some("inner"));
    assert_eq!(problem.field, "/steps/1/branches/0/retries");
    assert!(
        problem.message.contains("unknown field `retries`"),
        "{problem}"
    );

    let problem =
        one_problem(json!({"steps": [{"id": "x", "kind": "skill", "skill": "Not A Name"}]}));
    assert_eq!(problem.step.as_deref(), Some("x"));
    assert_eq!(problem.field, "/steps/0/skill");
    assert!(problem.message.contains("invalid skill name"), "{problem}");

    let problem = one_problem(json!({"steps": [{"id": "x", "kind": "teleport"}]}));
    assert!(
        problem.message.contains("unknown variant `teleport`"),
        "{problem}"
    );
}

#[test]
fn rule_errors_name_the_step_and_the_field() {
    let cases = [
        (
            json!({"steps": [skill("a", json!({})), skill("a", json!({}))]}),
            "a",
            "/steps/1/id",
            "already used",
        ),
        // An item's step runs once per item: after the map, only the map's output is there.
        (
            json!({"steps": [
                {"id": "m", "kind": "map", "over": "input.xs", "step": skill("each", json!({}))},
                skill("after", json!("${steps.each.output}")),
            ]}),
            "after",
            "/steps/1/input",
            "steps.each is not available",
        ),
        (
            json!({"steps": [skill("in", json!({}))]}),
            "in",
            "/steps/0/id",
            "reserved word",
        ),
        (
            json!({"steps": [skill("a", json!({"n": ["${1 +}"]}))]}),
            "a",
            "/steps/0/input/n/0",
            "does not parse",
        ),
        (
            json!({"steps": [skill("a", json!({"n": "${steps.b.output}"})), skill("b", json!({}))]}),
            "a",
            "/steps/0/input",
            "steps.b is not available",
        ),
        (
            json!({"steps": [{"id": "p", "kind": "parallel", "branches": [
                skill("x", json!({})), skill("y", json!("${steps.x.output}"))
            ]}]}),
            "y",
            "/steps/0/branches/1/input",
            "steps.x is not available",
        ),
        (
            json!({"steps": [{"id": "p", "kind": "parallel", "join": {"quorum": 3}, "branches": [
                skill("x", json!({})), skill("y", json!({}))
            ]}]}),
            "p",
            "/steps/0/join",
            "quorum",
        ),
        (
            json!({"steps": [{"id": "a", "kind": "skill", "skill": "examples/hello", "version": "^^1"}]}),
            "a",
            "/steps/0/version",
            "semver",
        ),
        (
            json!({"steps": [{"id": "m", "kind": "map", "over": "input.xs", "concurrency": 0,
                "step": skill("s", json!("${item}"))}]}),
            "m",
            "/steps/0/concurrency",
            "1 to 64",
        ),
        (
            json!({"steps": [{"id": "m", "kind": "map", "over": "item", "step": skill("s", json!({}))}]}),
            "m",
            "/steps/0/over",
            "unknown variable \"item\"",
        ),
        (
            json!({"steps": [{"id": "w", "kind": "switch", "cases": [
                {"when": "input.a.all(x, input.b.all(y, x == y))", "step": skill("s", json!({}))}
            ]}]}),
            "w",
            "/steps/0/cases/0/when",
            "may not contain another",
        ),
        (
            json!({"steps": [{"id": "c", "kind": "agent", "agent": "Bad_Name"}]}),
            "c",
            "/steps/0/agent",
            "agent name",
        ),
        (
            json!({"steps": [{"id": "a", "kind": "skill", "skill": "examples/hello",
                "retry": {"max_attempts": 3, "initial_delay_ms": 5000, "max_delay_ms": 100}}]}),
            "a",
            "/steps/0/retry/initial_delay_ms",
            "at most max_delay_ms",
        ),
    ];
    for (document, step, field, message) in cases {
        let problem = one_problem(document.clone());
        assert_eq!(problem.step.as_deref(), Some(step), "{document}: {problem}");
        assert_eq!(problem.field, field, "{document}: {problem}");
        assert!(problem.message.contains(message), "{document}: {problem}");
    }

    // Not retryable, whatever the policy says.
    let problem = one_problem(
        json!({"steps": [{"id": "a", "kind": "skill", "skill": "examples/hello",
        "retry": {"max_attempts": 2, "retry_on": ["invalid-input"]}}]}),
    );
    assert!(
        problem.message.contains("unknown variant `invalid-input`"),
        "{problem}"
    );

    // An output template sees every step.
    assert!(
        problems(
            json!({"steps": [{"id": "p", "kind": "parallel", "branches": [
        skill("x", json!({}))]}], "output": "${steps.x.output}"})
        )
        .is_empty()
    );
}

#[test]
fn documents_too_large_or_too_deep_are_refused() {
    let mut step = skill("leaf", json!({}));
    for depth in 0..20 {
        step = json!({"id": format!("s{depth}"), "kind": "sequence", "steps": [step]});
    }
    let found = problems(json!({"steps": [step]}));
    assert!(
        found.iter().any(|p| p.message.contains("nest at most 16")),
        "{found:#?}"
    );

    let branches: Vec<Value> = (0..1001)
        .map(|i| skill(&format!("b{i}"), json!({})))
        .collect();
    let found = problems(json!({"steps": [{"id": "p", "kind": "parallel", "branches": branches}]}));
    assert!(
        found
            .iter()
            .any(|p| p.message.contains("1 to 256 branches")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.message.contains("at most 1000 steps")),
        "{found:#?}"
    );

    // A YAML alias bomb stops at the parser's budget instead of expanding.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
        ));
    }
    let refused = value_of(&bomb, Format::Yaml).unwrap_err();
    assert!(refused[0].message.contains("not YAML"), "{refused:?}");

    let refused = value_of("{", Format::Json).unwrap_err();
    assert!(refused[0].message.contains("not JSON"));
}
