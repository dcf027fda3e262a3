//! `omniforge skill new | build | test` from an empty directory, as a skill author meets them:
//! the embedded template and SDK, the real toolchain, the real runtime.

use std::path::Path;
use std::process::Output;

use crate::{ok, omniforge_env, stderr, stdout_text};

/// Runs `omniforge` in `dir` with the nested cargo builds sharing one target directory
/// (kept between test runs, so only the first run compiles the SDK's dependencies).
fn author(dir: &Path, args: &[&str]) -> Output {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skill-projects");
    omniforge_env(dir, args, &[("CARGO_TARGET_DIR", target.to_str().unwrap())])
}

#[test]
fn a_rust_skill_goes_from_nothing_to_tested() {
    let tmp = tempfile::tempdir().unwrap();
    let created = author(
        tmp.path(),
        &["skill", "new", "acme/greeter", "--lang", "rust"],
    );
    let said = ok(&created, "skill new");
    assert!(said.contains("created acme/greeter"), "{said}");
    let project = tmp.path().join("greeter");
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "src/lib.rs",
        "omniforge.toml",
        "tests.json",
        "README.md",
        "vendor/omniforge-sdk/src/lib.rs",
        "vendor/omniforge-sdk/wit/worlds.wit",
        "vendor/omniforge-sdk/wit/deps/http.wit",
    ] {
        assert!(project.join(file).is_file(), "{file} is missing");
    }
    let manifest = std::fs::read_to_string(project.join("omniforge.toml")).unwrap();
    assert!(manifest.contains("name = \"acme/greeter\""), "{manifest}");

    // A second `new` into the same place refuses rather than overwriting.
    let again = author(
        tmp.path(),
        &["skill", "new", "acme/greeter", "--lang", "rust"],
    );
    assert_ne!(again.status.code(), Some(0));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));

    let built = author(&project, &["skill", "build"]);
    let said = ok(&built, "skill build");
    assert!(said.contains("built acme/greeter 0.1.0"), "{said}");
    assert!(said.contains("world:   omniforge:skill/tool"), "{said}");
    assert!(project.join("build/skill.wasm").is_file());

    let tested = author(&project, &["skill", "test"]);
    let said = ok(&tested, "skill test");
    assert!(said.contains("3 passed, 0 failed"), "{said}");
    assert!(said.contains("ok     greets by name"), "{said}");

    // The built component runs like any other.
    let ran = author(
        &project,
        &["run", "build/skill.wasm", "--input", r#"{"name": "Ada"}"#],
    );
    assert_eq!(ok(&ran, "run").trim(), r#"{"greeting":"Hello, Ada!"}"#);

    // A case that does not hold fails the run and says why.
    std::fs::write(
        project.join("tests.json"),
        r#"[{"name": "wrong greeting", "input": {"name": "Ada"}, "output": {"greeting": "Hi"}},
            {"name": "wrong kind", "input": {}, "error": "denied"}]"#,
    )
    .unwrap();
    let failing = author(&project, &["skill", "test"]);
    assert_eq!(failing.status.code(), Some(1));
    let said = stdout_text(&failing);
    assert!(
        said.contains("FAILED wrong greeting: expected output {\"greeting\":\"Hi\"}"),
        "{said}"
    );
    assert!(
        said.contains("FAILED wrong kind: expected error denied, got error invalid-input"),
        "{said}"
    );
    assert!(said.contains("0 passed, 2 failed"), "{said}");
}

#[test]
fn a_skill_that_uses_an_undeclared_capability_fails_its_build_check() {
    let tmp = tempfile::tempdir().unwrap();
    ok(
        &author(
            tmp.path(),
            &["skill", "new", "acme/sneaky", "--lang", "rust"],
        ),
        "skill new",
    );
    let project = tmp.path().join("sneaky");
    // Uses the key-value store while the manifest says world = "tool".
    let source = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
    let source = source.replace(
        "    log::info(",
        "    omniforge_sdk::kv::increment(\"greetings\", 1)?;\n    log::info(",
    );
    std::fs::write(project.join("src/lib.rs"), source).unwrap();
    let built = author(&project, &["skill", "build"]);
    assert_eq!(built.status.code(), Some(2), "{}", stdout_text(&built));
    let said = stderr(&built);
    assert!(
        said.contains("not a valid skill for its manifest"),
        "{said}"
    );
    assert!(
        said.contains("world = \\\"skill\\\"") || said.contains("world = \"skill\""),
        "{said}"
    );
}

#[test]
fn a_missing_toolchain_says_what_to_install() {
    let tmp = tempfile::tempdir().unwrap();
    ok(
        &author(
            tmp.path(),
            &["skill", "new", "acme/lonely", "--lang", "rust"],
        ),
        "skill new",
    );
    let empty = tempfile::tempdir().unwrap();
    let built = omniforge_env(
        &tmp.path().join("lonely"),
        &["skill", "build"],
        &[("PATH", empty.path().to_str().unwrap())],
    );
    assert_eq!(built.status.code(), Some(2));
    let said = stderr(&built);
    assert!(said.contains("cargo is not installed"), "{said}");
    assert!(said.contains("rustup"), "{said}");

    // C: no zig anywhere, then a compiler named in OMNIFORGE_CC that does not exist.
    ok(
        &author(tmp.path(), &["skill", "new", "acme/plain", "--lang", "c"]),
        "skill new --lang c",
    );
    let c_project = tmp.path().join("plain");
    let built = omniforge_env(
        &c_project,
        &["skill", "build"],
        &[("PATH", empty.path().to_str().unwrap())],
    );
    assert_eq!(built.status.code(), Some(2));
    let said = stderr(&built);
    assert!(said.contains("no C compiler for WebAssembly"), "{said}");
    assert!(said.contains("pip install ziglang=="), "{said}");
    assert!(said.contains("OMNIFORGE_CC"), "{said}");
    let built = omniforge_env(
        &c_project,
        &["skill", "build"],
        &[("OMNIFORGE_CC", "/nonexistent/wasi-cc --sysroot=/x")],
    );
    assert_eq!(built.status.code(), Some(2));
    let said = stderr(&built);
    assert!(said.contains("/nonexistent/wasi-cc"), "{said}");

    let nowhere = omniforge_env(tmp.path(), &["skill", "build"], &[]);
    assert_eq!(nowhere.status.code(), Some(2));
    assert!(
        stderr(&nowhere).contains("is it a skill project?")
            || stderr(&nowhere).contains("a skill project?"),
        "{}",
        stderr(&nowhere)
    );

    let bad = omniforge_env(tmp.path(), &["skill", "new", "Bad Name"], &[]);
    assert_ne!(bad.status.code(), Some(0));
    assert!(
        stderr(&bad).contains("cannot be a skill name"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn the_rust_examples_pass_their_test_cases() {
    use omniforge_test_programs as programs;
    for (example, wasm) in crate::packages::EXAMPLES {
        let dir = Path::new(programs::EXAMPLES_DIR).join(example);
        let tested = omniforge_env(
            Path::new("."),
            &["skill", "test", dir.to_str().unwrap(), "--component", wasm],
            &[],
        );
        let said = ok(&tested, example);
        assert!(said.contains(" 0 failed"), "{example}: {said}");
    }
}
