//! Each bad package is rejected with its own error, and nothing reaches the blob store.

use omniforge_registry::{FsBlobStore, IngestError, PackageError, PackageLimits, ingest};
use omniforge_test_programs as programs;

use crate::common::{HELLO_MANIFEST, hello_package, no_blobs, zip_of, zip_with};

/// One bad package: what it is, its bytes, and a check of the error it must produce.
pub type BadPackage = (&'static str, Vec<u8>, fn(&PackageError) -> bool);

/// The bad packages.
pub fn corpus() -> Vec<BadPackage> {
    let hello = programs::read(programs::HELLO);
    let manifest = HELLO_MANIFEST.as_bytes();
    let with_manifest =
        |text: String| zip_of(&[("omniforge.toml", text.as_bytes()), ("skill.wasm", &hello)]);

    let zeros = vec![0u8; 40 << 20];
    let mut big_random = vec![0u8; 49 << 20];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for chunk in big_random.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let mut big_wasm = b"\0asm\x0d\0\x01\0".to_vec();
    big_wasm.extend_from_slice(&big_random);

    let mut duplicate = zip_of(&[
        ("omniforge.toml", manifest),
        ("skill.wasm", &hello),
        ("skill.wasn", &hello),
    ]);
    replace_all(&mut duplicate, b"skill.wasn", b"skill.wasm");

    let many: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| (format!("schemas/s{i}.json"), b"{}".to_vec()))
        .collect();
    let mut many_entries: Vec<(&str, &[u8])> =
        vec![("omniforge.toml", manifest), ("skill.wasm", &hello)];
    many_entries.extend(many.iter().map(|(n, d)| (n.as_str(), d.as_slice())));

    let mut truncated = hello_package(HELLO_MANIFEST);
    truncated.truncate(truncated.len() / 2);

    // A decoy end-of-central-directory record after the real one: the ZIP reader would skip
    // it and use the real directory (which here repeats a name).
    let mut decoy = zip_of(&[
        ("omniforge.toml", manifest),
        ("skill.wasm", &hello),
        ("skill.wasn", &hello),
    ]);
    replace_all(&mut decoy, b"skill.wasn", b"skill.wasm");
    decoy.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0\0\0\0\0\xff\xff\xff\x7f\0\0");

    let empty_component = wat::parse_str("(component)").unwrap();
    let kv_wasm = programs::read(programs::KV_COUNTER);
    let http_wasm = programs::read(programs::HTTP_GET);
    let skill_manifest = HELLO_MANIFEST.replace("\"tool\"", "\"skill\"");

    vec![
        (
            "zip bomb",
            zip_of(&[("omniforge.toml", manifest), ("skill.wasm", &zeros)]),
            |e| matches!(e, PackageError::CompressionRatio { .. }),
        ),
        (
            "../ path",
            zip_of(&[
                ("omniforge.toml", manifest),
                ("skill.wasm", &hello),
                ("../evil.txt", b"x"),
            ]),
            |e| matches!(e, PackageError::UnsafePath(p) if p == "../evil.txt"),
        ),
        (
            "absolute path",
            zip_of(&[("/etc/cron.d/evil", b"x"), ("omniforge.toml", manifest)]),
            |e| matches!(e, PackageError::UnsafePath(_)),
        ),
        ("missing manifest", zip_of(&[("skill.wasm", &hello)]), |e| {
            matches!(e, PackageError::MissingManifest)
        }),
        (
            "missing component",
            zip_of(&[("omniforge.toml", manifest)]),
            |e| matches!(e, PackageError::MissingComponent),
        ),
        (
            "invalid TOML",
            with_manifest("[package\nname = ".into()),
            |e| matches!(e, PackageError::ManifestSyntax(_)),
        ),
        (
            "bad semver",
            with_manifest(HELLO_MANIFEST.replace("1.0.0", "1.0")),
            |e| matches!(e, PackageError::ManifestSyntax(m) if m.contains("version")),
        ),
        (
            "bad name",
            with_manifest(HELLO_MANIFEST.replace("tests/hello", "Tests/Hello World")),
            |e| matches!(e, PackageError::ManifestSyntax(m) if m.contains("invalid skill name")),
        ),
        (
            "not wasm",
            zip_of(&[
                ("omniforge.toml", manifest),
                ("skill.wasm", b"#!/bin/sh\nrm -rf /"),
            ]),
            |e| matches!(e, PackageError::NotWasm(_)),
        ),
        (
            "a component of another world",
            zip_of(&[
                ("omniforge.toml", manifest),
                ("skill.wasm", &empty_component),
            ]),
            |e| matches!(e, PackageError::WrongWorld(_)),
        ),
        (
            "kv import beyond permissions",
            zip_of(&[
                ("omniforge.toml", skill_manifest.as_bytes()),
                ("skill.wasm", &kv_wasm),
            ]),
            |e| matches!(e, PackageError::UndeclaredImport { import, .. } if import.starts_with("omniforge:skill/kv")),
        ),
        (
            "http import beyond permissions",
            zip_of(&[
                ("omniforge.toml", skill_manifest.as_bytes()),
                ("skill.wasm", &http_wasm),
            ]),
            |e| matches!(e, PackageError::UndeclaredImport { import, .. } if import.starts_with("wasi:http/")),
        ),
        (
            "oversize wasm",
            zip_with(
                &[("omniforge.toml", manifest), ("skill.wasm", &big_wasm)],
                zip::CompressionMethod::Stored,
            ),
            |e| matches!(e, PackageError::TooLarge { what, .. } if what == "skill.wasm"),
        ),
        ("duplicate entry", duplicate, |e| {
            matches!(e, PackageError::DuplicateEntry(_))
        }),
        (
            "decoy end record",
            decoy,
            |e| matches!(e, PackageError::NotAZip(m) if m.contains("end of central directory")),
        ),
        (
            "unexpected file",
            zip_of(&[
                ("omniforge.toml", manifest),
                ("skill.wasm", &hello),
                ("run.sh", b"x"),
            ]),
            |e| matches!(e, PackageError::UnexpectedFile(_)),
        ),
        ("too many entries", zip_of(&many_entries), |e| {
            matches!(e, PackageError::TooManyEntries { .. })
        }),
        ("truncated archive", truncated, |e| {
            matches!(e, PackageError::NotAZip(_))
        }),
        (
            "not a zip",
            b"PK\x03\x04 but not really a zip".to_vec(),
            |e| matches!(e, PackageError::NotAZip(_)),
        ),
        (
            "invalid schema",
            with_manifest(HELLO_MANIFEST.replace(
                "world = \"tool\"",
                "world = \"tool\"\ninput-schema = { type = 5 }",
            )),
            |e| matches!(e, PackageError::InvalidSchema { which: "input", .. }),
        ),
        (
            "missing schema file",
            with_manifest(HELLO_MANIFEST.replace(
                "world = \"tool\"",
                "world = \"tool\"\noutput-schema = \"schemas/out.json\"",
            )),
            |e| matches!(e, PackageError::MissingSchemaFile(_)),
        ),
        (
            "malformed signature",
            zip_of(&[
                ("omniforge.toml", manifest),
                ("skill.wasm", &hello),
                ("omniforge.sig", b"{}"),
            ]),
            |e| matches!(e, PackageError::InvalidSignatureFile(_)),
        ),
    ]
}

fn replace_all(haystack: &mut [u8], from: &[u8], to: &[u8]) {
    let mut i = 0;
    while i + from.len() <= haystack.len() {
        if &haystack[i..i + from.len()] == from {
            haystack[i..i + from.len()].copy_from_slice(to);
        }
        i += 1;
    }
}

#[tokio::test]
async fn every_bad_package_is_rejected_with_its_own_error_and_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).unwrap();
    for (case, bytes, expected) in corpus() {
        match ingest(&store, &bytes, &PackageLimits::default()).await {
            Err(IngestError::Package(e)) => {
                assert!(expected(&e), "{case}: unexpected error: {e}");
                assert!(!e.to_string().is_empty());
            }
            Err(other) => panic!("{case}: failed to store instead of rejecting: {other}"),
            Ok(p) => panic!("{case}: accepted as {}", p.manifest.package.name),
        }
        assert!(no_blobs(dir.path()), "{case}: something was stored");
    }
}

#[tokio::test]
async fn a_valid_package_is_stored_with_its_component() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).unwrap();
    let bytes = hello_package(HELLO_MANIFEST);
    let package = ingest(&store, &bytes, &PackageLimits::default())
        .await
        .unwrap();
    use omniforge_registry::BlobStore;
    assert_eq!(
        store.get(&package.package_sha256).await.unwrap().as_deref(),
        Some(&bytes[..])
    );
    assert!(store.contains(&package.component_sha256).await.unwrap());
}
