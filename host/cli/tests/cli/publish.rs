//! The skill author's and user's path against a running `omniforge serve`: pack every
//! example, publish it with the CLI, find it, invoke it, yank a version and see resolution
//! skip it.

use std::path::Path;

use omniforge_test_programs as programs;

use crate::packages::{EXAMPLES, pack};
use crate::server::serve_in;
use crate::{omniforge_env, omniforge_in, stderr, stdout, stdout_text};

#[test]
fn examples_are_published_found_invoked_and_yanked_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let key = crate::bootstrap(dir.path());
    let server = serve_in(dir.path(), &[]);
    let url = format!("http://127.0.0.1:{}", server.port);
    let env = [("OMNIFORGE_API_KEY", key.as_str())];
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", &url]);
        omniforge_env(dir.path(), &all, &env)
    };

    for (example, wasm) in EXAMPLES {
        let package = pack(dir.path(), example, wasm);
        let published = cli(&["skill", "publish", package.to_str().unwrap()]);
        assert_eq!(published.status.code(), Some(0), "{}", stderr(&published));
        assert!(
            stdout_text(&published)
                .starts_with(&format!("published examples/{example} 0.1.0 (sha256:")),
            "{}",
            stdout_text(&published)
        );
    }
    let again = cli(&[
        "skill",
        "publish",
        dir.path().join("hello.zip").to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2), "a refused request");
    assert!(stderr(&again).contains("409"), "{}", stderr(&again));

    let found = cli(&["skill", "search", "greets", "--json"]);
    assert_eq!(found.status.code(), Some(0), "{}", stderr(&found));
    let found = stdout(&found);
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["full_name"], "examples/hello");
    let listed = cli(&["skill", "list"]);
    let text = stdout_text(&listed);
    for (example, _) in EXAMPLES {
        assert!(text.contains(&format!("examples/{example}")), "{text}");
    }

    let hello = cli(&[
        "skill",
        "invoke",
        "examples/hello",
        "--input",
        r#"{"name": "Ada"}"#,
    ]);
    assert_eq!(
        stdout(&hello),
        serde_json::json!({"greeting": "Hello, Ada!"}),
        "{}",
        stderr(&hello)
    );
    let stats = cli(&[
        "skill",
        "invoke",
        "examples/text-stats",
        "-i",
        r#"{"text": "x y x"}"#,
    ]);
    assert_eq!(stdout(&stats)["words"], 3, "{}", stderr(&stats));
    for expected in [1, 2] {
        let counter = cli(&[
            "skill",
            "invoke",
            "examples/kv-counter",
            "-i",
            r#"{"key": "k"}"#,
        ]);
        assert_eq!(stdout(&counter)["count"], expected, "{}", stderr(&counter));
    }
    let invalid = cli(&["skill", "invoke", "examples/hello", "-i", "{}"]);
    assert_eq!(invalid.status.code(), Some(1));
    assert!(stderr(&invalid).contains("422"), "{}", stderr(&invalid));
    let missing = cli(&["skill", "invoke", "examples/nope", "-i", "{}"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));

    // A second version, then yanked: resolution goes back to the first.
    let source = dir.path().join("hello-0.2.0");
    std::fs::create_dir(&source).unwrap();
    let manifest =
        std::fs::read_to_string(Path::new(programs::EXAMPLES_DIR).join("hello/omniforge.toml"))
            .unwrap()
            .replace("version = \"0.1.0\"", "version = \"0.2.0\"");
    std::fs::write(source.join("omniforge.toml"), manifest).unwrap();
    let package = pack(dir.path(), source.to_str().unwrap(), programs::HELLO);
    let published = cli(&["skill", "publish", package.to_str().unwrap()]);
    assert_eq!(published.status.code(), Some(0), "{}", stderr(&published));
    let version = |requirement: &str| {
        let target = format!("examples/hello{requirement}");
        let answer = cli(&[
            "skill",
            "invoke",
            &target,
            "-i",
            r#"{"name": "Bo"}"#,
            "--report",
        ]);
        assert_eq!(answer.status.code(), Some(0), "{}", stderr(&answer));
        stdout(&answer)["version"].as_str().unwrap().to_owned()
    };
    assert_eq!(version(""), "0.2.0");
    let yanked = cli(&["skill", "yank", "examples/hello@0.2.0"]);
    assert_eq!(yanked.status.code(), Some(0), "{}", stderr(&yanked));
    assert_eq!(version(""), "0.1.0");
    assert_eq!(version("@^0.1"), "0.1.0");
    let unyanked = cli(&["skill", "unyank", "examples/hello@0.2.0"]);
    assert_eq!(unyanked.status.code(), Some(0), "{}", stderr(&unyanked));
    assert_eq!(version(""), "0.2.0");

    // One exit-code table for every command: a wrong key is 5 everywhere, a server that
    // cannot be reached 6.
    let wrong = format!("{}{}", &key[..17], "W".repeat(43));
    let package = dir.path().join("hello.zip");
    for args in [
        &["skill", "list"][..],
        &["skill", "search", "greets"],
        &["skill", "invoke", "examples/hello", "-i", "{}"],
        &["skill", "publish", package.to_str().unwrap()],
        &["skill", "yank", "examples/hello@0.1.0"],
    ] {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", &url]);
        let refused = omniforge_env(dir.path(), &all, &[("OMNIFORGE_API_KEY", wrong.as_str())]);
        assert_eq!(
            refused.status.code(),
            Some(5),
            "{args:?}: {}",
            stderr(&refused)
        );
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", "http://127.0.0.1:9"]);
        let unreachable = omniforge_env(dir.path(), &all, &env);
        assert_eq!(
            unreachable.status.code(),
            Some(6),
            "{args:?}: {}",
            stderr(&unreachable)
        );
    }

    // Without a key, a clear message.
    let anonymous = omniforge_in(dir.path(), &["skill", "list", "--server", &url]);
    assert_ne!(anonymous.status.code(), Some(0));
    assert!(
        stderr(&anonymous).contains("no API key"),
        "{}",
        stderr(&anonymous)
    );
}
