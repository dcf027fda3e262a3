//! The example skills of every SDK language (Rust, Python, JavaScript, C) built from source
//! with `omniforge skill build`, checked with `skill test`, published to a running `omniforge
//! serve` and invoked over REST with the outputs their `tests.json` expects; and an SDK
//! guest's capabilities (kv, HTTP) and a hostile one (an endless loop) in Python, JavaScript
//! and C.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

pub(crate) use crate::server_cli::ServerCli;
use crate::{ok, omniforge_env, omniforge_in, serve, stderr, stdout};

/// Whether `program args` runs and succeeds.
fn runs(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Passes `found` through; when false, fails the test under CI and elsewhere says loudly
/// that it skips.
fn present(found: bool, what: &str, install: &str) -> bool {
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "{what} is missing under CI: {install}"
        );
        eprintln!("SKIPPED: {what} is not installed ({install})");
        crate::record_skip(
            &format!("a test needing {what}"),
            &format!("{what} is not installed ({install})"),
        );
    }
    found
}

/// Whether the Python package `module` imports here (see [`present`]).
pub(crate) fn python_package(module: &str, install: &str) -> bool {
    present(
        runs("python3", &["-c", &format!("import {module}")]),
        &format!("the Python package {module}"),
        install,
    )
}

/// Whether `program` runs here (see [`present`]).
pub(crate) fn toolchain(program: &str, install: &str) -> bool {
    present(runs(program, &["--version"]), program, install)
}

/// Copies an example into `to` (so builds never write into the source tree) and returns it.
/// A Rust example is a member of the examples' cargo workspace and depends on the SDK by
/// path, so the workspace and the SDK come along, at the same places relative to each other.
pub(crate) fn copy_example(language: &str, name: &str, to: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if language == "rust" {
        let workspace = to.join("example-skills/rust");
        if !workspace.exists() {
            copy_dir(&root.join("example-skills/rust"), &workspace);
            copy_dir(&root.join("sdk/rust"), &to.join("sdk/rust"));
        }
        return workspace.join(name);
    }
    let target = to.join(format!("{language}-{name}"));
    copy_dir(
        &root.join("example-skills").join(language).join(name),
        &target,
    );
    target
}

/// Copies a directory, following symbolic links (the Rust SDK's `wit` is one), without
/// build outputs.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if ["build", "target", "__pycache__", "node_modules"]
            .iter()
            .any(|skip| name == *skip)
        {
            continue;
        }
        if std::fs::metadata(entry.path()).unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(name));
        } else {
            std::fs::copy(entry.path(), to.join(name)).unwrap();
        }
    }
}

/// Builds and tests each example, publishes it to a fresh server and checks every case of
/// its tests.json over REST (outputs equal, errors by status and kind).
fn examples_round_trip(language: &str, examples: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let projects: Vec<PathBuf> = examples
        .iter()
        .map(|name| copy_example(language, name, dir.path()))
        .collect();
    // Rust builds share one target directory between test runs (only the first compiles the
    // SDK's dependencies).
    let cargo_target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skill-projects");
    let cargo_target = [("CARGO_TARGET_DIR", cargo_target.to_str().unwrap())];
    for project in &projects {
        ok(
            &omniforge_env(project, &["skill", "build"], &cargo_target),
            &format!("build {}", project.display()),
        );
        let tested = ok(
            &omniforge_in(project, &["skill", "test"]),
            &format!("test {}", project.display()),
        );
        assert!(tested.contains(" 0 failed"), "{tested}");
    }

    let (_server, cli) = ServerCli::start(dir.path());
    let cli = |args: &[&str]| cli.run(args);
    for project in &projects {
        let published = cli(&["skill", "publish", project.to_str().unwrap()]);
        ok(&published, &format!("publish {}", project.display()));
    }
    for project in &projects {
        answers_its_cases(&cli, project);
    }
}

/// Invokes the published skill of `project` with every case of its tests.json through `cli`
/// (`skill invoke`): outputs equal, errors by exit code and kind.
pub(crate) fn answers_its_cases(cli: &dyn Fn(&[&str]) -> Output, project: &Path) {
    let manifest = std::fs::read_to_string(project.join("omniforge.toml")).unwrap();
    let name = manifest
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap()
        .to_owned();
    // Inputs as written: the skills may depend on their key order (data-cleaner does).
    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        input: Box<serde_json::value::RawValue>,
        output: Option<Value>,
        error: Option<String>,
    }
    let cases: Vec<Case> =
        serde_json::from_str(&std::fs::read_to_string(project.join("tests.json")).unwrap())
            .unwrap();
    for case in cases {
        let answer = cli(&["skill", "invoke", &name, "--input", case.input.get()]);
        let what = format!("{name}: {}", case.name);
        match (case.output, case.error) {
            (Some(expected), _) => {
                assert_eq!(stdout(&answer), expected, "{what}: {}", stderr(&answer));
            }
            (None, Some(kind)) => {
                assert_eq!(answer.status.code(), Some(1), "{what}");
                assert!(
                    stderr(&answer).contains(&kind),
                    "{what}: {}",
                    stderr(&answer)
                );
            }
            (None, None) => panic!("{what}: the case expects nothing"),
        }
    }
}

#[test]
fn rust_examples_build_test_publish_and_answer_over_rest() {
    examples_round_trip("rust", &["hello", "text-stats", "kv-counter", "http-get"]);
}

#[test]
fn python_examples_build_test_publish_and_answer_over_rest() {
    if !toolchain("componentize-py", "pip install componentize-py==0.25.1") {
        return;
    }
    examples_round_trip("python", &["hello", "markdown-to-text", "data-cleaner"]);
}

#[test]
fn js_examples_build_test_publish_and_answer_over_rest() {
    if !toolchain("npm", "install Node.js 20 or newer with npm") {
        return;
    }
    examples_round_trip("js", &["hello", "template-renderer", "url-parser"]);
}

/// Whether a wasm32-wasi C compiler that `skill build` finds is here (zig on the PATH or
/// the `ziglang` Python package; see [`present`]).
fn c_toolchain() -> bool {
    let found = runs("zig", &["version"]) || runs("python3", &["-m", "ziglang", "version"]);
    present(found, "zig", "pip install ziglang==0.17.1")
}

#[test]
fn c_examples_build_test_publish_and_answer_over_rest() {
    if !c_toolchain() {
        return;
    }
    examples_round_trip("c", &["hello", "checksum", "csv-to-json"]);
}

/// `skill new` + `build` + `test` from an empty directory, for Python, JavaScript and C
/// (Rust's is in author.rs).
#[test]
fn python_js_and_c_templates_build_and_pass_their_tests() {
    for lang in ["python", "js", "c"] {
        let found = match lang {
            "python" => toolchain("componentize-py", "pip install componentize-py==0.25.1"),
            "js" => toolchain("npm", "install Node.js 20 or newer with npm"),
            _ => c_toolchain(),
        };
        if !found {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        ok(
            &omniforge_in(
                dir.path(),
                &["skill", "new", "acme/greeter", "--lang", lang],
            ),
            "skill new",
        );
        let project = dir.path().join("greeter");
        if lang == "js" {
            // The build tools come pinned with all their dependencies.
            let lock = std::fs::read_to_string(project.join("package-lock.json")).unwrap();
            assert!(lock.contains(r#""name": "greeter""#), "{lock:.200}");
        }
        let built = ok(&omniforge_in(&project, &["skill", "build"]), "build");
        assert!(
            built.contains("built acme/greeter 0.1.0"),
            "{lang}: {built}"
        );
        // A tool: nothing beyond logging and WASI's basics.
        assert!(!built.contains("omniforge:skill/kv"), "{lang}: {built}");
        assert!(!built.contains("wasi:http"), "{lang}: {built}");
        let tested = ok(&omniforge_in(&project, &["skill", "test"]), "test");
        assert!(tested.contains("3 passed, 0 failed"), "{lang}: {tested}");
    }
}

/// A JavaScript project whose entry is `app.ts`: the build strips the types.
#[test]
fn a_typescript_skill_builds_and_passes_its_tests() {
    if !toolchain("npm", "install Node.js 20 or newer with npm") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    ok(
        &omniforge_in(dir.path(), &["skill", "new", "acme/typed", "--lang", "js"]),
        "skill new",
    );
    let project = dir.path().join("typed");
    std::fs::remove_file(project.join("app.js")).unwrap();
    std::fs::write(
        project.join("app.ts"),
        r#"import { skill, SkillError, log, type Context } from 'omniforge-sdk';

interface Input { name?: string }
interface Output { greeting: string }

function greet(ctx: Context, input: Input): Output {
  const name: string = (input.name ?? '').trim();
  if (!name) throw SkillError.invalidInput('name must not be blank');
  log.info(`greeting ${name} (request ${ctx.requestId})`);
  return { greeting: `Hello, ${name}!` };
}

export const handler = skill<Input, Output>(greet);
"#,
    )
    .unwrap();
    let built = ok(&omniforge_in(&project, &["skill", "build"]), "build");
    assert!(built.contains("built acme/typed 0.1.0"), "{built}");
    let tested = ok(&omniforge_in(&project, &["skill", "test"]), "test");
    assert!(tested.contains("3 passed, 0 failed"), "{tested}");
}

/// A Python skill using the key-value store, outbound HTTP and a secret through the SDK, and looping
/// forever when asked: the loop ends at its fuel limit, the same process keeps answering.
const PYTHON_CAPABILITIES: &str = r#"
from omniforge_sdk import Context, SkillError, http, kv, secrets, skill


@skill
def run(ctx: Context, input: dict) -> dict:
    op = input["op"]
    if op == "count":
        kv.set_json("last", {"by": input["by"]})
        return {"count": kv.increment("count", 2), "last": kv.get_json("last"),
                "keys": kv.list_keys("")}
    if op == "fetch":
        response = http.post(input["url"], json={"from": "python"},
                             headers={"x-skill": ctx.skill})
        return {"status": response.status, "body": response.text(),
                "type": response.header("Content-Type")}
    if op == "secret":
        return {"length": len(secrets.get("api-token").encode())}
    if op == "spin":
        while True:
            pass
    raise SkillError.not_found(f"no op {op}")
"#;

#[test]
fn a_python_guest_reaches_kv_and_http_and_its_endless_loop_is_stopped() {
    if !toolchain("componentize-py", "pip install componentize-py==0.25.1") {
        return;
    }
    capabilities("python", "app.py", PYTHON_CAPABILITIES);
}

/// Builds `source` as a `skill`-world project with kv, HTTP and a secret, then runs it: kv,
/// HTTP and the secret work when granted and are denied when not, and an endless loop ends
/// at its limit.
fn capabilities(lang: &str, file: &str, source: &str) {
    let dir = tempfile::tempdir().unwrap();
    ok(
        &omniforge_in(dir.path(), &["skill", "new", "acme/caps", "--lang", lang]),
        "skill new",
    );
    let project = dir.path().join("caps");
    std::fs::write(project.join(file), source).unwrap();
    let manifest = std::fs::read_to_string(project.join("omniforge.toml"))
        .unwrap()
        .replace("world = \"tool\"", "world = \"skill\"")
        .replace(
            "[limits]",
            "[permissions]\nkv = true\nhttp = [\"example.com\"]\nsecrets = [\"api-token\"]\n\n[limits]",
        )
        .lines()
        .filter(|l| !l.starts_with("input-schema") && !l.starts_with("output-schema"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(project.join("omniforge.toml"), manifest).unwrap();
    let built = ok(&omniforge_in(&project, &["skill", "build"]), "build");
    assert!(built.contains("omniforge:skill/kv"), "{built}");
    assert!(built.contains("wasi:http/outgoing-handler"), "{built}");
    assert!(built.contains("omniforge:skill/secrets"), "{built}");

    let run = |input: &str, extra: &[&str]| {
        let mut args = vec!["run", "build/skill.wasm", "--input", input];
        args.extend_from_slice(extra);
        omniforge_in(&project, &args)
    };
    let counted = run(r#"{"op": "count", "by": "ada"}"#, &["--kv"]);
    assert_eq!(
        stdout(&counted),
        serde_json::json!({"count": 2, "last": {"by": "ada"}, "keys": ["count", "last"]}),
        "{}",
        stderr(&counted)
    );
    let denied = run(r#"{"op": "count", "by": "ada"}"#, &[]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(stderr(&denied).contains("denied"), "{}", stderr(&denied));

    let secret = run(
        r#"{"op": "secret"}"#,
        &["--secret", "api-token=s3cr\u{e9}t"],
    );
    assert_eq!(
        stdout(&secret),
        serde_json::json!({"length": 7}),
        "{lang}: {}",
        stderr(&secret)
    );
    let undeclared = run(r#"{"op": "secret"}"#, &[]);
    assert_eq!(undeclared.status.code(), Some(1), "{lang}");
    assert!(
        stderr(&undeclared).contains("denied") && stderr(&undeclared).contains("api-token"),
        "{lang}: {}",
        stderr(&undeclared)
    );

    let port = serve("hello from the host");
    let url = format!("http://127.0.0.1:{port}/greeting");
    let fetch = format!(r#"{{"op": "fetch", "url": "{url}"}}"#);
    let fetched = run(
        &fetch,
        &["--allow-http", &format!("http://127.0.0.1:{port}")],
    );
    assert_eq!(
        stdout(&fetched)["body"],
        "hello from the host",
        "{}",
        stderr(&fetched)
    );
    assert_eq!(stdout(&fetched)["status"], 200);
    let refused = run(&fetch, &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("denied"), "{}", stderr(&refused));

    let spun = run(r#"{"op": "spin"}"#, &["--fuel", "200000000"]);
    assert_eq!(spun.status.code(), Some(3), "{}", stderr(&spun));
    assert!(stderr(&spun).contains("fuel"), "{}", stderr(&spun));
    let timed = run(r#"{"op": "spin"}"#, &["--no-fuel", "--timeout-ms", "300"]);
    assert_eq!(timed.status.code(), Some(3), "{}", stderr(&timed));

    // Over REST: the loop ends at its limit while the same server keeps answering.
    let (_server, cli) = ServerCli::start(dir.path());
    let cli = |args: &[&str]| cli.run(args);
    ok(
        &cli(&["skill", "publish", project.to_str().unwrap()]),
        "publish",
    );
    let count = r#"{"op": "count", "by": "rest"}"#;
    // Waits for the compile, so the loop below starts at once.
    let first = cli(&["skill", "invoke", "acme/caps", "--input", count]);
    assert_eq!(stdout(&first)["count"], 2, "{lang}: {}", stderr(&first));
    std::thread::scope(|scope| {
        let spinning = scope.spawn(|| {
            cli(&[
                "skill",
                "invoke",
                "acme/caps",
                "--input",
                r#"{"op": "spin"}"#,
            ])
        });
        // The loop runs for seconds (its fuel or time limit); these answer meanwhile.
        std::thread::sleep(std::time::Duration::from_millis(300));
        for round in 0..3 {
            let answer = cli(&["skill", "invoke", "acme/caps", "--input", count]);
            assert_eq!(
                stdout(&answer)["count"],
                4 + 2 * round,
                "{lang}: {}",
                stderr(&answer)
            );
        }
        let spun = spinning.join().unwrap();
        assert_eq!(spun.status.code(), Some(3), "{lang}: {}", stderr(&spun));
        let said = stderr(&spun);
        assert!(
            said.contains("limit-exceeded") || said.contains("timeout"),
            "{lang}: {said}"
        );
    });
}

/// The JavaScript twin of [`PYTHON_CAPABILITIES`].
const JS_CAPABILITIES: &str = r#"
import { skill, SkillError } from 'omniforge-sdk';
import * as kv from 'omniforge-sdk/kv.js';
import * as http from 'omniforge-sdk/http.js';
import * as secrets from 'omniforge-sdk/secrets.js';

export const handler = skill((ctx, input) => {
  switch (input.op) {
    case 'count':
      kv.setJson('last', { by: input.by });
      return { count: kv.increment('count', 2), last: kv.getJson('last'), keys: kv.listKeys('') };
    case 'fetch': {
      const response = http.post(input.url, { json: { from: 'js' }, headers: { 'x-skill': ctx.skill } });
      return { status: response.status, body: response.text(), type: response.header('Content-Type') ?? null };
    }
    case 'secret':
      return { length: new TextEncoder().encode(secrets.get('api-token')).length };
    case 'spin':
      for (;;) {}
    default:
      throw SkillError.notFound(`no op ${input.op}`);
  }
});
"#;

#[test]
fn a_js_guest_reaches_kv_and_http_and_its_endless_loop_is_stopped() {
    if !toolchain("npm", "install Node.js 20 or newer with npm") {
        return;
    }
    capabilities("js", "app.js", JS_CAPABILITIES);
}

/// The C twin of [`PYTHON_CAPABILITIES`], on the C SDK's kv, JSON and HTTP calls.
const C_CAPABILITIES: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "omniforge.h"

static of_result count(const of_value *input) {
    of_json_writer last = {0};
    of_json_begin_object(&last);
    of_json_key(&last, "by");
    of_json_string(&last, of_get_string(input, "by"));
    of_json_end_object(&last);
    const char *text = of_json_text(&last);
    of_kv_status s = of_kv_set("last", text, strlen(text));
    of_json_writer_free(&last);
    if (s != OF_KV_OK)
        return of_kv_error(s, "storing last");
    int64_t n;
    if ((s = of_kv_increment("count", 2, &n)) != OF_KV_OK)
        return of_kv_error(s, "counting");
    of_bytes stored;
    bool found;
    if ((s = of_kv_get("last", &stored, &found)) != OF_KV_OK)
        return of_kv_error(s, "reading last");
    of_keys keys;
    if ((s = of_kv_list_keys("", 100, &keys)) != OF_KV_OK)
        return of_kv_error(s, "listing");
    of_json_writer out = {0};
    of_json_begin_object(&out);
    of_json_key(&out, "count");
    of_json_int(&out, n);
    of_json_key(&out, "last");
    of_json_raw(&out, (const char *)stored.ptr, stored.len);
    of_json_key(&out, "keys");
    of_json_begin_array(&out);
    for (size_t i = 0; i < keys.len; i++)
        of_json_string_n(&out, keys.items[i].ptr, keys.items[i].len);
    of_json_end_array(&out);
    of_json_end_object(&out);
    of_bytes_free(&stored);
    of_keys_free(&keys);
    return of_ok_json(&out);
}

static of_result fetch(const of_context *ctx, const of_value *input) {
    char skill[256];
    snprintf(skill, sizeof skill, "%.*s", (int)ctx->skill.len, ctx->skill.ptr);
    of_header headers[] = {{"content-type", "application/json"}, {"x-skill", skill}};
    const char *body = "{\"from\":\"c\"}";
    of_http_request request = {.method = "POST", .url = of_get_string(input, "url"),
                               .headers = headers, .header_count = 2,
                               .body = body, .body_len = strlen(body)};
    of_http_response response;
    of_http_status s = of_http_send(&request, &response);
    if (s != OF_HTTP_OK)
        return of_http_error(s, "fetching");
    of_json_writer out = {0};
    of_json_begin_object(&out);
    of_json_key(&out, "status");
    of_json_int(&out, response.status);
    of_json_key(&out, "body");
    of_json_string_n(&out, response.body, response.body_len);
    of_json_key(&out, "type");
    const char *type = of_http_header_value(&response, "Content-Type");
    if (type)
        of_json_string(&out, type);
    else
        of_json_null(&out);
    of_json_end_object(&out);
    of_http_response_free(&response);
    return of_ok_json(&out);
}

static of_result secret(void) {
    of_result value = of_secret_get("api-token");
    if (!value.ok)
        return value;
    of_json_writer out = {0};
    of_json_begin_object(&out);
    of_json_key(&out, "length");
    of_json_int(&out, (int64_t)value.len);
    of_json_end_object(&out);
    memset(value.text, 0, value.len);
    free(value.text);
    return of_ok_json(&out);
}

static of_result run(const of_context *ctx, const of_value *input) {
    const char *op = of_get_string(input, "op");
    if (strcmp(op, "count") == 0)
        return count(input);
    if (strcmp(op, "fetch") == 0)
        return fetch(ctx, input);
    if (strcmp(op, "secret") == 0)
        return secret();
    if (strcmp(op, "spin") == 0) {
        volatile unsigned long spins = 0;
        for (;;)
            spins++;
    }
    return of_error(OF_NOT_FOUND, "no op %s", op);
}

OF_SKILL(run)
"#;

#[test]
fn a_c_guest_reaches_kv_and_http_and_its_endless_loop_is_stopped() {
    if !c_toolchain() {
        return;
    }
    capabilities("c", "src/handler.c", C_CAPABILITIES);
}
