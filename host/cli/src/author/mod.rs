//! Writing skills: `omniforge skill new` (a project from a template, with the SDK and WIT
//! embedded in this binary), `skill build` (the language's toolchain, then a check that the
//! result is a component of the manifest's world) and `skill test` (the project's test cases,
//! run locally in the real runtime).

mod c;
mod cases;
mod templates;
mod toolchain;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use omniforge_registry::{Manifest, SkillName};

pub use cases::test;
pub use templates::new;
pub use toolchain::build;

/// The languages a skill project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Language {
    /// Rust with `omniforge-sdk` (cargo, `wasm32-wasip2`).
    Rust,
    /// Python with `omniforge_sdk` (componentize-py).
    Python,
    /// JavaScript with `omniforge-sdk` (jco and componentize-js).
    Js,
    /// C with the OmniForge C SDK (wit-bindgen C bindings, zig cc or another wasm32-wasi
    /// compiler, the preview1 adapter).
    C,
}

impl Language {
    /// The language of the project in `dir`, from the files its template writes.
    fn detect(dir: &Path) -> Result<Self> {
        let has = |file: &str| dir.join(file).is_file();
        if has("Cargo.toml") {
            return Ok(Self::Rust);
        }
        // An entry point decides before the tooling files: a C project may keep a
        // package.json for its scripts, a JS one a helper app.py.
        if has("package.json") && (has("app.js") || has("app.ts")) {
            return Ok(Self::Js);
        }
        if has("app.py") {
            return Ok(Self::Python);
        }
        if c::is_c_project(dir) {
            return Ok(Self::C);
        }
        if has("package.json") {
            return Ok(Self::Js);
        }
        bail!(
            "cannot tell the language of {}: expected Cargo.toml (Rust), package.json \
             (JavaScript), app.py (Python) or src/*.c (C); create a project with \
             `omniforge skill new`",
            dir.display()
        )
    }

    fn name(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::Js => "js",
            Self::C => "c",
        }
    }
}

/// Arguments of `omniforge skill new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The skill's name: `namespace/name`, or `name` alone (the namespace is then
    /// `--namespace`). The project directory is named after `name`.
    name: String,
    /// The language.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Language,
    /// Namespace when NAME has none (publishing claims it for your tenant).
    #[arg(long, default_value = "local")]
    namespace: String,
    /// Where to create the project [default: a directory named after the skill, here].
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Arguments of `omniforge skill build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The project directory (holding omniforge.toml).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

/// Arguments of `omniforge skill test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The project directory (holding omniforge.toml and the built component).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The test cases [default: tests.json in the project].
    #[arg(long)]
    cases: Option<PathBuf>,
    /// Build first (`omniforge skill build`).
    #[arg(long, conflicts_with = "component")]
    build: bool,
    /// Test this built component instead of the manifest's `[skill] component` (as
    /// `skill pack --component` does, e.g. when a CI pipeline builds elsewhere).
    #[arg(long)]
    component: Option<PathBuf>,
}

/// The project's manifest, parsed (not yet checked against a component).
fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("omniforge.toml");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (is {} a skill project?)",
            path.display(),
            dir.display()
        )
    })?;
    Manifest::parse(&text).with_context(|| format!("{} is not a valid manifest", path.display()))
}

/// `namespace/name` from the command line, checked by the registry's rules.
fn skill_name(name: &str, namespace: &str) -> Result<SkillName> {
    let full = if name.contains('/') {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    };
    full.parse()
        .with_context(|| format!("{full:?} cannot be a skill name"))
}
