//! Building packages byte by byte, the way an attacker or a broken tool would.

use std::io::{Cursor, Write};
use std::path::Path;

use omniforge_registry::{PackageLimits, ValidatedPackage, pack_dir};
use omniforge_test_programs as programs;
use zip::write::SimpleFileOptions;

pub const HELLO_MANIFEST: &str = r#"
[package]
name = "tests/hello"
version = "1.0.0"
description = "Greets"
license = "MIT"

[skill]
world = "tool"
"#;

/// A ZIP of `entries`, deflated, exactly as given (no checks).
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    zip_with(entries, zip::CompressionMethod::Deflated)
}

pub fn zip_with(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(method);
    for (name, data) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// A valid package of the `hello` example with `manifest`.
pub fn hello_package(manifest: &str) -> Vec<u8> {
    let wasm = programs::read(programs::HELLO);
    zip_of(&[
        ("omniforge.toml", manifest.as_bytes()),
        ("skill.wasm", &wasm),
    ])
}

/// Packs an example skill from its directory with the component built by the tests.
pub fn pack_example(name: &str, wasm: &str) -> (Vec<u8>, ValidatedPackage) {
    let dir = Path::new(programs::EXAMPLES_DIR).join(name);
    pack_dir(&dir, Some(Path::new(wasm)), &PackageLimits::default())
        .unwrap_or_else(|e| panic!("packing {name}: {e}"))
}

/// Whether a blob store directory holds no blobs.
pub fn no_blobs(root: &Path) -> bool {
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .map(|e| e.unwrap().path())
                .map(|p| if p.is_dir() { count(&p) } else { 1 })
                .sum()
        })
    }
    count(&root.join("sha256")) == 0
}
