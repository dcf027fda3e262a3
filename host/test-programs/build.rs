//! Builds the Rust example skills and the hostile test guests from source for
//! `wasm32-wasip2`, and writes a module of path constants to `$OUT_DIR/programs.rs`.
//!
//! The guests are separate cargo workspaces with their own lockfiles. They get their own target
//! directory next to this workspace's (a nested build in the same one would wait on its lock
//! forever), so `cargo test` and `cargo clippy` share one guest build and CI reuses it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

/// A guest workspace to build: where it is, and its members (package names).
struct GuestWorkspace {
    dir: &'static str,
    members: &'static [&'static str],
}

const WORKSPACES: &[GuestWorkspace] = &[
    GuestWorkspace {
        dir: "../../example-skills/rust",
        members: &[
            "hello",
            "text-stats",
            "kv-counter",
            "http-get",
            "text-report",
        ],
    },
    GuestWorkspace {
        dir: "guests",
        members: &[
            "spin-loop",
            "memory-hog",
            "deep-recursion",
            "panic",
            "escape",
            "log-flood",
            "global-state",
            "sleeper",
            "output-flood",
            "relay",
            "legacy-hello",
            "ticker",
            "flaky",
            "secret-reader",
        ],
    },
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = guest_target_dir(&out_dir);
    println!("cargo:rerun-if-changed=../../wit");
    // The Rust SDK the example skills are written with.
    println!("cargo:rerun-if-changed=../../sdk/rust/src");
    println!("cargo:rerun-if-changed=../../sdk/rust/Cargo.toml");

    let mut constants = String::new();
    for workspace in WORKSPACES {
        let dir = manifest_dir.join(workspace.dir);
        for watched in ["Cargo.toml", "Cargo.lock"] {
            println!("cargo:rerun-if-changed={}", dir.join(watched).display());
        }
        for member in workspace.members {
            println!("cargo:rerun-if-changed={}", dir.join(member).display());
        }
        build(&dir, &target_dir);
        for member in workspace.members {
            let file = member.replace('-', "_");
            let wasm = target_dir.join(format!("wasm32-wasip2/release/{file}.wasm"));
            assert!(
                wasm.exists(),
                "guest {member} built but {} is missing",
                wasm.display()
            );
            constants.push_str(&format!(
                "/// Path of the built `{member}` component.\npub const {}: &str = {:?};\n",
                file.to_uppercase(),
                wasm.display().to_string()
            ));
        }
    }
    // `hello` once more as a wasip1 core module, for the preview1-adapter path.
    let examples = manifest_dir.join("../../example-skills/rust");
    build_for(&examples, &target_dir, "wasm32-wasip1", &["-p", "hello"]);
    let wasip1 = target_dir.join("wasm32-wasip1/release/hello.wasm");
    constants.push_str(&format!(
        "/// Path of `hello` built for wasm32-wasip1: a core module, not a component.\n\
         pub const HELLO_WASIP1: &str = {:?};\n",
        wasip1.display().to_string()
    ));
    constants.push_str(&format!(
        "/// Directory of the Rust example skills (each with its `omniforge.toml`).\n\
         pub const EXAMPLES_DIR: &str = {:?};\n",
        examples.canonicalize().unwrap().display().to_string()
    ));
    fs::write(out_dir.join("programs.rs"), constants).unwrap();
}

/// Runs `cargo build --release --target wasm32-wasip2` for one guest workspace.
fn build(workspace: &Path, target_dir: &Path) {
    build_for(workspace, target_dir, "wasm32-wasip2", &[]);
}

/// Runs `cargo build --release --target <target> <extra>` in a guest workspace.
fn build_for(workspace: &Path, target_dir: &Path, target: &str, extra: &[&str]) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "--locked", "--target", target])
        .args(extra)
        .arg("--target-dir")
        .arg(target_dir);
    // The outer build's settings are for the host, not for wasm guests: clippy's wrapper, host
    // rustflags and the outer profile must not leak into the nested build.
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for {}: {e}", workspace.display()));
    assert!(
        status.success(),
        "building the guests in {} for {target} failed (is the target installed? \
         `rustup target add {target}`)",
        workspace.display()
    );
}

/// `<cargo target dir>/omniforge-guests`, found by walking up from `OUT_DIR` to the directory
/// cargo marks with `CACHEDIR.TAG`; falls back to a directory inside `OUT_DIR`.
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    if let Ok(dir) = env::var("OMNIFORGE_GUEST_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").exists())
        .map(|target| target.join("omniforge-guests"))
        .unwrap_or_else(|| out_dir.join("guests"))
}
