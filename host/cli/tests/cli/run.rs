//! `omniforge run` on components: stdout for output, stderr for usage and reasons, exit
//! codes by outcome.

use omniforge_test_programs as programs;

use crate::{omniforge, serve, stderr, stdout};

#[test]
fn hello_prints_the_greeting_and_usage() {
    let out = omniforge(&["run", programs::HELLO, "--input", r#"{"name": "Ada"}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), serde_json::json!({"greeting": "Hello, Ada!"}));
    assert!(stderr(&out).contains("usage: fuel="), "{}", stderr(&out));
}

#[test]
fn text_stats_reads_its_input_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(&input, r#"{"text": "one two two"}"#).unwrap();
    let out = omniforge(&[
        "run",
        programs::TEXT_STATS,
        "--input",
        &format!("@{}", input.display()),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out)["words"], 3);
    assert_eq!(
        stdout(&out)["top_words"][0],
        serde_json::json!({"word": "two", "count": 2})
    );
}

#[test]
fn secrets_are_granted_by_name_with_a_value_or_an_environment_variable() {
    let out = crate::omniforge_env(
        std::path::Path::new("."),
        &[
            "run",
            programs::SECRET_READER,
            "--secret",
            "api-token=inline-value",
            "--secret",
            "db-password",
            "--input",
            r#"{"names": ["api-token", "db-password", "other"]}"#,
        ],
        &[("db-password", "from-the-environment")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let answers = stdout(&out);
    assert_eq!(
        answers["api-token"]["len"],
        "inline-value".len(),
        "{answers}"
    );
    assert_eq!(answers["db-password"]["len"], "from-the-environment".len());
    assert_eq!(answers["other"]["error"], "denied", "{answers}");

    let missing = omniforge(&[
        "run",
        programs::SECRET_READER,
        "--secret",
        "unset-variable-x",
    ]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("unset-variable-x"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn kv_counter_needs_the_kv_grant() {
    let out = omniforge(&[
        "run",
        programs::KV_COUNTER,
        "--kv",
        "--input",
        r#"{"key": "k", "by": 5}"#,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), serde_json::json!({"key": "k", "count": 5}));
    assert!(
        stderr(&out).contains("k is now 5"),
        "the skill's log reaches stderr: {}",
        stderr(&out)
    );

    let denied = omniforge(&["run", programs::KV_COUNTER, "--input", r#"{"key": "k"}"#]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(stderr(&denied).contains("denied"), "{}", stderr(&denied));
}

#[test]
fn http_get_reaches_only_allowed_hosts() {
    let port = serve("pong");
    let input = format!(r#"{{"url": "http://127.0.0.1:{port}/ping"}}"#);
    let allowed = format!("http://127.0.0.1:{port}");
    let out = omniforge(&[
        "run",
        programs::HTTP_GET,
        "--input",
        &input,
        "--allow-http",
        &allowed,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out)["body"], "pong");

    let denied = omniforge(&["run", programs::HTTP_GET, "--input", &input]);
    assert_eq!(denied.status.code(), Some(1), "{}", stderr(&denied));
    assert!(stderr(&denied).contains("denied"), "{}", stderr(&denied));
}

#[test]
fn a_bad_allow_http_pattern_is_a_usage_error() {
    let out = omniforge(&["run", programs::HELLO, "--allow-http", "ftp://x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("scheme"), "{}", stderr(&out));
}

#[test]
fn limits_exit_3_with_a_one_line_reason() {
    let cases: [(&str, &[&str], &str); 4] = [
        (
            programs::SPIN_LOOP,
            &["--fuel", "1000000"],
            "fuel exhausted",
        ),
        (
            programs::SPIN_LOOP,
            &["--no-fuel", "--timeout-ms", "200"],
            "timed out after 200 ms",
        ),
        (
            programs::MEMORY_HOG,
            &["--memory-mb", "16"],
            "memory limit exceeded",
        ),
        (
            programs::SLEEPER,
            &["--timeout-ms", "200"],
            "timed out after 200 ms",
        ),
    ];
    for (guest, flags, reason) in cases {
        let mut args = vec!["run", guest];
        args.extend_from_slice(flags);
        let out = omniforge(&args);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{guest} {flags:?}: {}",
            stderr(&out)
        );
        let line = stderr(&out)
            .lines()
            .find(|l| l.starts_with("error:"))
            .map(str::to_owned);
        assert!(
            line.as_deref().is_some_and(|l| l.contains(reason)),
            "{guest}: {}",
            stderr(&out)
        );
        assert!(
            out.stdout.is_empty(),
            "no output on stdout for a failed run"
        );
    }
}

#[test]
fn a_crash_exits_4_with_the_panic_message() {
    let out = omniforge(&["run", programs::PANIC]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("the guest gave up on purpose"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_report_flag_prints_the_outcome_as_json() {
    let out = omniforge(&[
        "run",
        programs::HELLO,
        "--report",
        "--input",
        r#"{"name": "R"}"#,
    ]);
    let report = stdout(&out);
    assert_eq!(report["outcome"], "ok");
    assert!(report["usage"]["fuel_consumed"].as_u64().unwrap() > 0);
}

#[test]
fn a_missing_or_invalid_component_exits_2() {
    let out = omniforge(&["run", "/nonexistent/skill.wasm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let out = omniforge(&["run", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a valid WebAssembly component"),
        "{}",
        stderr(&out)
    );
}
