//! The README's path, as a newcomer follows it: the commands of its publish block run
//! verbatim (build, pack, publish, invoke) against a real `omniforge serve`; and a Python
//! skill published and invoked at once, whose first invocation may meet its compile.

use std::path::Path;

use crate::examples::{copy_example, toolchain};
use crate::server::serve_in;
use crate::{ok, omniforge_env, stderr, stdout, stdout_text};

/// The marker line before the README's publish block.
const MARKER: &str = "<!-- tested: cli/tests/cli/readme.rs -->";

/// The commands of the README's publish block, split into arguments as a shell would
/// (quotes kept together, comments dropped).
fn readme_commands() -> Vec<Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = readme
        .split_once(MARKER)
        .unwrap_or_else(|| panic!("README.md has no {MARKER}"))
        .1;
    let block = block
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a sh block follows the marker")
        .0;
    block
        .lines()
        .map(shell_words)
        .filter(|w| !w.is_empty())
        .collect()
}

fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quote, mut started) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (None, '#') => break,
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (_, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

#[test]
fn the_readme_publish_path_works_verbatim() {
    let commands = readme_commands();
    assert!(commands.len() >= 6, "{commands:?}");
    let dir = tempfile::tempdir().unwrap();
    // The repository's layout, where the README's paths point.
    copy_example("rust", "hello", dir.path());
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skill-projects");
    let target = target.to_str().unwrap().to_owned();
    let mut key = String::new();
    let mut server = None;
    let mut last = None;
    for words in commands {
        // The key bootstrap printed is passed to the commands below as the README says.
        if words[0] == "export" {
            assert!(words[1].starts_with("OMNIFORGE_API_KEY="), "{words:?}");
            continue;
        }
        assert_eq!(
            words[0], "omniforge",
            "the block holds omniforge commands: {words:?}"
        );
        let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        match args.as_slice() {
            // The test runs its own server on a free port instead of 8080.
            ["serve", ..] => {
                server = Some(serve_in(dir.path(), &[]));
                continue;
            }
            ["admin", "bootstrap", ..] => {
                let out = omniforge_env(dir.path(), &args, &[]);
                key = ok(&out, "bootstrap").trim().to_owned();
                continue;
            }
            _ => {}
        }
        let url = format!(
            "http://127.0.0.1:{}",
            server
                .as_ref()
                .expect("serve comes before the server is used")
                .port
        );
        let env = [
            ("OMNIFORGE_API_KEY", key.as_str()),
            ("OMNIFORGE_SERVER", url.as_str()),
            ("CARGO_TARGET_DIR", target.as_str()),
        ];
        let out = omniforge_env(dir.path(), &args, &env);
        ok(&out, &format!("omniforge {}", args.join(" ")));
        last = Some(out);
    }
    let last = last.expect("the block ends with an invocation");
    assert_eq!(
        stdout(&last),
        serde_json::json!({"greeting": "Hello, Ada!"}),
        "{}",
        stderr(&last)
    );
}

#[test]
fn a_python_skill_invoked_right_after_publishing_answers_or_says_it_is_compiling() {
    if !toolchain("componentize-py", "pip install componentize-py==0.25.1") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let project = copy_example("python", "hello", dir.path());
    ok(&omniforge_env(&project, &["skill", "build"], &[]), "build");
    let key = crate::bootstrap(dir.path());
    let server = serve_in(dir.path(), &[]);
    let url = format!("http://127.0.0.1:{}", server.port);
    let env = [
        ("OMNIFORGE_API_KEY", key.as_str()),
        ("OMNIFORGE_SERVER", url.as_str()),
    ];
    let published = omniforge_env(
        dir.path(),
        &["skill", "publish", project.to_str().unwrap(), "--no-wait"],
        &env,
    );
    ok(&published, "publish without waiting for the compile");
    // At once, over plain HTTP: the answer, or 503 skill-compiling with a Retry-After;
    // never the request timeout, however long the compile takes on this machine.
    let (status, body) = crate::server::http(
        server.port,
        "POST",
        "/api/v1/skills/examples/hello-python/invoke",
        Some(&key),
        Some(r#"{"input": {"name": "Ada"}}"#),
    );
    match status {
        200 => assert!(body.contains("Hello, Ada!"), "{body}"),
        503 => assert!(body.contains("/skill-compiling"), "{body}"),
        other => panic!("the first invocation answered {other}: {body}"),
    }
    // The CLI retries what is still compiling, within its wait.
    let invoked = omniforge_env(
        dir.path(),
        &[
            "skill",
            "invoke",
            "examples/hello-python",
            "--input",
            r#"{"name": "Ada"}"#,
        ],
        &env,
    );
    assert_eq!(
        stdout(&invoked)["greeting"],
        "Hello, Ada!",
        "{} {}",
        stdout_text(&invoked),
        stderr(&invoked)
    );
}
