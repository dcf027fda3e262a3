//! `omniforge skill test`: runs the project's test cases (`tests.json`) against the built
//! component in the real runtime, as the server would: input schema first, then the skill
//! in a fresh sandbox with its manifest's limits and permissions (the key-value store is in
//! memory and shared by the cases of one run, in order).

use std::path::Path;

use anyhow::{Context, Result, bail};
use omniforge_registry::{PackageLimits, pack_dir};
use omniforge_runtime::{Outcome, Runtime, RuntimeConfig};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{TestArgs, toolchain};
use crate::run::{InvalidInput, LocalSkill, check_input, default_cache_dir};

/// One test case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// What it checks.
    name: String,
    /// The input, as written: the skill sees the author's text (key order included), as it
    /// sees a caller's over REST.
    input: Box<RawValue>,
    /// The output it must produce (compared as JSON values).
    #[serde(default)]
    output: Option<Value>,
    /// The error kind it must produce instead: `invalid-input`, `denied`, `not-found`,
    /// `unavailable`, `failed`, `limit-exceeded`, `timeout` or `skill-trapped`.
    #[serde(default)]
    error: Option<String>,
}

/// What one invocation came to, in the terms of a case.
#[derive(Debug, PartialEq)]
enum Got {
    Output(Value),
    Error { kind: String, message: String },
}

/// Runs the cases; fails when one does not hold.
pub async fn test(args: &TestArgs) -> Result<()> {
    let dir = &args.dir;
    let package = if args.build {
        toolchain::build_dir(dir)?
    } else {
        pack_dir(dir, args.component.as_deref(), &PackageLimits::default())
            .map(|(_, package)| package)
            .with_context(|| {
                format!(
                    "{} is not a built skill (run `omniforge skill build` first)",
                    dir.display()
                )
            })?
    };
    let cases_path = args.cases.clone().unwrap_or_else(|| dir.join("tests.json"));
    let cases = read_cases(&cases_path)?;
    let skill = LocalSkill::from_package(package);
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: default_cache_dir(),
        ..RuntimeConfig::default()
    })
    .context("starting the runtime")?;
    let loaded = runtime
        .load(&skill.component)
        .await
        .context("loading the component")?;

    let mut failed = 0;
    for case in &cases {
        let input = case.input.get().to_owned();
        let got = match skill
            .input_schema
            .as_ref()
            .map(|schema| check_input(schema, &input))
        {
            Some(Err(e)) if e.downcast_ref::<InvalidInput>().is_some() => Got::Error {
                kind: "invalid-input".into(),
                message: e.to_string(),
            },
            Some(Err(e)) => return Err(e),
            _ => {
                let request =
                    skill.request(input, skill.manifest_limits(), skill.manifest_grants());
                got(runtime.invoke(&loaded, request).await.outcome)?
            }
        };
        match verdict(case, &got) {
            None => println!("ok     {}", case.name),
            Some(why) => {
                failed += 1;
                println!("FAILED {}: {why}", case.name);
            }
        }
    }
    println!(
        "{} passed, {failed} failed ({})",
        cases.len() - failed,
        cases_path.display()
    );
    if failed > 0 {
        return Err(crate::exit::SkillFailed(format!(
            "{failed} of {} test cases failed",
            cases.len()
        ))
        .into());
    }
    Ok(())
}

fn read_cases(path: &Path) -> Result<Vec<Case>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cases: Vec<Case> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} must be a JSON array of {{\"name\", \"input\", and \"output\" or \"error\"}}",
            path.display()
        )
    })?;
    if cases.is_empty() {
        bail!("{} has no test cases", path.display());
    }
    for case in &cases {
        if case.output.is_some() == case.error.is_some() {
            bail!(
                "test case {:?} in {} needs exactly one of \"output\" and \"error\"",
                case.name,
                path.display()
            );
        }
    }
    Ok(cases)
}

/// The outcome in a case's terms: the output as JSON, or the error kind the API reports.
fn got(outcome: Outcome) -> Result<Got> {
    let kind = match &outcome {
        Outcome::Ok { output } => {
            let value = serde_json::from_str(output).context("the runtime passed on non-JSON")?;
            return Ok(Got::Output(value));
        }
        Outcome::InvalidInput { .. } => "invalid-input".to_owned(),
        Outcome::GuestError { kind, .. } => kind.to_string(),
        Outcome::Timeout { .. } => "timeout".into(),
        Outcome::Trap { .. } => "skill-trapped".into(),
        Outcome::Canceled => "canceled".into(),
        Outcome::ConcurrencyLimit { .. } => "too-many-requests".into(),
        _ => "limit-exceeded".into(),
    };
    Ok(Got::Error {
        kind,
        message: outcome.to_string(),
    })
}

/// Why `got` does not satisfy `case`, if it does not.
fn verdict(case: &Case, got: &Got) -> Option<String> {
    match (got, &case.output, &case.error) {
        (Got::Output(output), Some(expected), _) if output == expected => None,
        (Got::Error { kind, .. }, _, Some(expected)) if kind == expected => None,
        (Got::Output(output), Some(expected), _) => {
            Some(format!("expected output {expected}, got {output}"))
        }
        (Got::Output(output), None, Some(expected)) => {
            Some(format!("expected error {expected}, got output {output}"))
        }
        (Got::Error { kind, message }, _, _) => Some(format!(
            "expected {}, got error {kind}: {message}",
            case.error
                .as_ref()
                .map_or_else(|| "an output".to_owned(), |e| format!("error {e}"))
        )),
        (Got::Output(_), None, None) => Some("the case names no expectation".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn case(output: Option<Value>, error: Option<&str>) -> Case {
        Case {
            name: "c".into(),
            input: RawValue::from_string("{}".into()).unwrap(),
            output,
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn outputs_compare_as_json_and_errors_by_kind() {
        let ok = Got::Output(json!({"a": 1, "b": [2]}));
        assert_eq!(
            verdict(&case(Some(json!({"b": [2], "a": 1})), None), &ok),
            None
        );
        assert!(
            verdict(&case(Some(json!({"a": 2, "b": [2]})), None), &ok)
                .unwrap()
                .contains("expected output")
        );
        assert!(
            verdict(&case(None, Some("invalid-input")), &ok)
                .unwrap()
                .contains("got output")
        );
        let error = Got::Error {
            kind: "invalid-input".into(),
            message: "name must not be blank".into(),
        };
        assert_eq!(verdict(&case(None, Some("invalid-input")), &error), None);
        let wrong = verdict(&case(None, Some("denied")), &error).unwrap();
        assert!(
            wrong.contains("expected error denied, got error invalid-input"),
            "{wrong}"
        );
        let unexpected = verdict(&case(Some(json!({})), None), &error).unwrap();
        assert!(
            unexpected.contains("name must not be blank"),
            "{unexpected}"
        );
    }
}
