//! `omniforge skill pack | inspect | sign | verify`, `omniforge key generate`, and
//! `omniforge run` on packages.

use std::path::{Path, PathBuf};

use omniforge_test_programs as programs;

use crate::{omniforge_in, serve, stderr, stdout, stdout_text};

pub const EXAMPLES: [(&str, &str); 4] = [
    ("hello", programs::HELLO),
    ("text-stats", programs::TEXT_STATS),
    ("kv-counter", programs::KV_COUNTER),
    ("http-get", programs::HTTP_GET),
];

/// Packs an example (a directory of `EXAMPLES_DIR`, or any path) into `dir` with the CLI; returns the package path.
pub fn pack(dir: &Path, example: &str, wasm: &str) -> PathBuf {
    let source = Path::new(programs::EXAMPLES_DIR).join(example);
    let stem = Path::new(example).file_name().unwrap().to_str().unwrap();
    let out = dir.join(format!("{stem}.zip"));
    let result = omniforge_in(
        dir,
        &[
            "skill",
            "pack",
            source.to_str().unwrap(),
            "--component",
            wasm,
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(
        result.status.code(),
        Some(0),
        "pack {example}: {}",
        stderr(&result)
    );
    assert!(
        stdout_text(&result).contains("digest sha256:"),
        "{}",
        stdout_text(&result)
    );
    out
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_example_packs_inspects_and_runs_from_its_package() {
    let dir = tempfile::tempdir().unwrap();
    for (example, wasm) in EXAMPLES {
        let package = pack(dir.path(), example, wasm);
        let inspect = omniforge_in(dir.path(), &["skill", "inspect", path(&package)]);
        assert_eq!(inspect.status.code(), Some(0), "{}", stderr(&inspect));
        let text = stdout_text(&inspect);
        assert!(
            text.starts_with(&format!("examples/{example} 0.1.0")),
            "{text}"
        );
        assert!(text.contains("omniforge:skill/handler@0.1.3"), "{text}");
        assert!(text.contains("signature:  unsigned"), "{text}");

        let json = omniforge_in(dir.path(), &["skill", "inspect", "--json", path(&package)]);
        assert_eq!(
            stdout(&json)["manifest"]["package"]["name"],
            format!("examples/{example}")
        );
    }

    let run = |package: &str, input: &str, extra: &[&str]| {
        let mut args = vec!["run", package, "--input", input];
        args.extend_from_slice(extra);
        omniforge_in(dir.path(), &args)
    };
    let hello = run("hello.zip", r#"{"name": "Pkg"}"#, &[]);
    assert_eq!(
        stdout(&hello),
        serde_json::json!({"greeting": "Hello, Pkg!"}),
        "{}",
        stderr(&hello)
    );
    let stats = run("text-stats.zip", r#"{"text": "x y x"}"#, &[]);
    assert_eq!(stdout(&stats)["words"], 3, "{}", stderr(&stats));
    // The manifest declares kv = true: no --kv needed.
    let counter = run("kv-counter.zip", r#"{"key": "k"}"#, &[]);
    assert_eq!(stdout(&counter)["count"], 1, "{}", stderr(&counter));

    // http-get's manifest allows only public hosts; a loopback server needs an extra grant.
    let port = serve("from the package");
    let input = format!(r#"{{"url": "http://127.0.0.1:{port}/"}}"#);
    let denied = run("http-get.zip", &input, &[]);
    assert_eq!(denied.status.code(), Some(1), "{}", stderr(&denied));
    let allowed = format!("http://127.0.0.1:{port}");
    let fetched = run("http-get.zip", &input, &["--allow-http", &allowed]);
    assert_eq!(
        stdout(&fetched)["body"],
        "from the package",
        "{}",
        stderr(&fetched)
    );
}

#[test]
fn input_is_checked_against_the_package_schema() {
    let dir = tempfile::tempdir().unwrap();
    pack(dir.path(), "text-stats", programs::TEXT_STATS);
    let out = omniforge_in(
        dir.path(),
        &["run", "text-stats.zip", "--input", r#"{"text": 5}"#],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid input at /text"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn packages_sign_and_verify_and_tampering_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let package = pack(dir.path(), "hello", programs::HELLO);
    let keys = omniforge_in(dir.path(), &["key", "generate", "--out", "author"]);
    assert_eq!(keys.status.code(), Some(0), "{}", stderr(&keys));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("author.secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret key is private: {mode:o}");
    }
    let again = omniforge_in(dir.path(), &["key", "generate", "--out", "author"]);
    assert_ne!(
        again.status.code(),
        Some(0),
        "existing keys are never overwritten"
    );

    let unsigned = omniforge_in(
        dir.path(),
        &["skill", "verify", path(&package), "--key", "author.pub"],
    );
    assert_ne!(unsigned.status.code(), Some(0));
    assert!(
        stderr(&unsigned).contains("not signed"),
        "{}",
        stderr(&unsigned)
    );

    let sign = omniforge_in(
        dir.path(),
        &["skill", "sign", path(&package), "--key", "author.secret"],
    );
    assert_eq!(sign.status.code(), Some(0), "{}", stderr(&sign));
    let verify = omniforge_in(
        dir.path(),
        &["skill", "verify", path(&package), "--key", "author.pub"],
    );
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
    assert!(stdout_text(&verify).contains("signature valid"));
    let inspect = omniforge_in(
        dir.path(),
        &["skill", "inspect", path(&package), "--key", "author.pub"],
    );
    assert!(
        stdout_text(&inspect).contains("signature:  valid"),
        "{}",
        stdout_text(&inspect)
    );

    omniforge_in(dir.path(), &["key", "generate", "--out", "stranger"]);
    let wrong = omniforge_in(
        dir.path(),
        &["skill", "verify", path(&package), "--key", "stranger.pub"],
    );
    assert_ne!(wrong.status.code(), Some(0));
    assert!(
        stderr(&wrong).contains("not by the given key"),
        "{}",
        stderr(&wrong)
    );

    // Repack the signed package with another component: the signature no longer holds.
    let limits = omniforge_registry::PackageLimits::default();
    let mut files =
        omniforge_registry::read_archive(&std::fs::read(&package).unwrap(), &limits).unwrap();
    files.insert("skill.wasm".into(), programs::read(programs::TEXT_STATS));
    let tampered = dir.path().join("tampered.zip");
    std::fs::write(&tampered, omniforge_registry::write_archive(&files)).unwrap();
    let caught = omniforge_in(
        dir.path(),
        &["skill", "verify", path(&tampered), "--key", "author.pub"],
    );
    assert_ne!(caught.status.code(), Some(0));
    assert!(
        stderr(&caught).contains("skill.wasm"),
        "{}",
        stderr(&caught)
    );
}

#[test]
fn a_bad_package_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.zip");
    let mut files = std::collections::BTreeMap::new();
    files.insert(
        "omniforge.toml".to_string(),
        b"[package]\nname = \"x\"\n".to_vec(),
    );
    files.insert("skill.wasm".to_string(), programs::read(programs::HELLO));
    std::fs::write(&bad, omniforge_registry::write_archive(&files)).unwrap();
    for args in [vec!["skill", "inspect", "bad.zip"], vec!["run", "bad.zip"]] {
        let out = omniforge_in(dir.path(), &args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(
            stderr(&out).contains("omniforge.toml"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn packing_a_directory_without_a_manifest_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = omniforge_in(dir.path(), &["skill", "pack", "."]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("omniforge.toml"), "{}", stderr(&out));
}
