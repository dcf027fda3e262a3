//! `omniforge skill build`: runs the project's language toolchain, puts the component where
//! the manifest's `[skill] component` says, and checks it the way the registry will (exports
//! the handler, imports only what the world and permissions allow).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use omniforge_registry::{Manifest, PackageLimits, ValidatedPackage, World, pack_dir};

use super::{BuildArgs, Language, read_manifest};

/// Builds the project, checks the component and prints what it is.
pub fn build(args: &BuildArgs) -> Result<()> {
    let package = build_dir(&args.dir)?;
    let manifest = &package.manifest;
    let info = &package.component_info;
    println!(
        "built {} {} -> {} ({} KiB)",
        manifest.package.name,
        manifest.package.version,
        args.dir.join(&manifest.skill.component).display(),
        package.component.len().div_ceil(1024)
    );
    println!("world:   {}", manifest.skill.world.wit_name());
    println!("imports: {}", info.imports.join(", "));
    Ok(())
}

/// Builds the project in `dir` and returns it validated as a package would be.
pub fn build_dir(dir: &Path) -> Result<ValidatedPackage> {
    let manifest = read_manifest(dir)?;
    let out = dir.join(&manifest.skill.component);
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    match Language::detect(dir)? {
        Language::Rust => build_rust(dir, &out)?,
        Language::Python => build_python(dir, &manifest, &out)?,
        Language::Js => build_js(dir, &manifest, &out)?,
        Language::C => super::c::build_c(dir, &manifest, &out)?,
    }
    let (_, package) = pack_dir(dir, None, &PackageLimits::default()).with_context(|| {
        format!(
            "{} was built but is not a valid skill for its manifest",
            out.display()
        )
    })?;
    Ok(package)
}

/// `cargo build --release --target wasm32-wasip2`, then the cdylib copied to `out`.
fn build_rust(dir: &Path, out: &Path) -> Result<()> {
    require(
        "cargo",
        &["--version"],
        "cargo is not installed: install Rust with rustup (https://rustup.rs), then \
         `rustup target add wasm32-wasip2`",
    )?;
    // Without rustup (a distribution's Rust) cargo's own error says what is missing.
    if let Ok(installed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        && installed.status.success()
        && !String::from_utf8_lossy(&installed.stdout)
            .lines()
            .any(|t| t.trim() == "wasm32-wasip2")
    {
        bail!("the wasm32-wasip2 target is not installed: run `rustup target add wasm32-wasip2`");
    }
    let output = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo")?;
    if !output.status.success() {
        bail!("cargo build failed (its messages are above)");
    }
    let built = cdylib_artifact(&output.stdout).context(
        "cargo built no .wasm library: is `crate-type = [\"cdylib\"]` in Cargo.toml's [lib]?",
    )?;
    copy_unless_same(&built, out)
}

/// Copies `from` to `to` unless they are the same file: the manifest may name cargo's own
/// output (a workspace member pointing into `../target`), and copying a file onto itself
/// truncates it.
fn copy_unless_same(from: &Path, to: &Path) -> Result<()> {
    if let (Ok(a), Ok(b)) = (from.canonicalize(), to.canonicalize())
        && a == b
    {
        return Ok(());
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// `componentize-py componentize app` against a world of exactly what the manifest
/// declares: componentize-py imports every function of its world whether the code calls it
/// or not, so building against the full `skill` world would ask for every capability.
fn build_python(dir: &Path, manifest: &Manifest, out: &Path) -> Result<()> {
    require(
        "componentize-py",
        &["--version"],
        "componentize-py is not installed: `pip install componentize-py==0.25.1` (it needs \
         Python 3.10 or newer)",
    )?;
    // Absolute: the tool runs in the project directory, which `dir` may be relative to.
    let wit = std::path::absolute(dir.join("build/wit"))?;
    write_world(&wit, manifest)?;
    let mut command = Command::new("componentize-py");
    command
        .arg("-d")
        .arg(&wit)
        .args(["-w", BUILD_WORLD, "componentize", "app", "-p", "."]);
    // A project without its own copy of the SDK builds with this binary's.
    if !dir.join("omniforge_sdk").is_dir() {
        let sdk = std::path::absolute(dir.join("build/python"))?;
        super::templates::write_python_sdk(&sdk.join("omniforge_sdk"))?;
        command.arg("-p").arg(sdk);
    }
    command.arg("-o").arg(std::path::absolute(out)?);
    run_tool(command, dir, "componentize-py")
}

/// `jco componentize app.js --bundle` (or `app.ts`; StarlingMonkey) against the manifest's
/// world, after `npm install` when the project's tools are not installed yet.
fn build_js(dir: &Path, manifest: &Manifest, out: &Path) -> Result<()> {
    let node = "Node.js is not installed: install Node.js 20 or newer with npm (Debian: \
                `apt-get install nodejs npm`)";
    require("node", &["--version"], node)?;
    require("npm", &["--version"], node)?;
    let jco = dir.join("node_modules/.bin/jco");
    if !jco.exists() {
        eprintln!("installing the project's build tools (npm install)…");
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .context("running npm install")?;
        if !status.success() || !jco.exists() {
            bail!(
                "npm install did not install jco: package.json needs the devDependencies \
                 @bytecodealliance/jco and @bytecodealliance/componentize-js (see \
                 `omniforge skill new --lang js`)"
            );
        }
    }
    // A project without its own copy of the SDK builds with this binary's.
    let sdk = dir.join("node_modules/omniforge-sdk");
    if !sdk.exists() {
        super::templates::write_js_sdk(&sdk)?;
    }
    let wit = std::path::absolute(dir.join("build/wit"))?;
    let imports = write_world(&wit, manifest)?;
    // The WIT interfaces are the component's imports, not modules for the bundler to find.
    let bundle_config = std::path::absolute(dir.join("build/bundle.config.mjs"))?;
    std::fs::write(
        &bundle_config,
        "export default { external: [/^omniforge:/, /^wasi:/] };\n",
    )
    .with_context(|| format!("writing {}", bundle_config.display()))?;
    // TypeScript: jco's bundler strips the types (it does not type-check; run `tsc
    // --noEmit` for that).
    let (js, ts) = (dir.join("app.js"), dir.join("app.ts"));
    let entry = if !js.exists() && ts.is_file() { ts } else { js };
    let mut command = Command::new(std::path::absolute(&jco)?);
    command
        .arg("componentize")
        .arg(std::path::absolute(entry)?)
        .arg("--bundle")
        .arg("--bundle-config")
        .arg(&bundle_config)
        .arg("--wit")
        .arg(&wit)
        .args(["--world-name", BUILD_WORLD]);
    // StarlingMonkey imports wasi:http for its own `fetch` unless told not to; a skill
    // without HTTP permissions must not import it.
    if !imports.http {
        command.args(["--disable", "http", "fetch-event"]);
    }
    command.arg("-o").arg(std::path::absolute(out)?);
    run_tool(command, dir, "jco componentize")
}

/// Runs a build tool in the project directory; its messages (stderr) reach the user.
pub(super) fn run_tool(mut command: Command, dir: &Path, name: &str) -> Result<()> {
    let status = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {name}"))?;
    if !status.success() {
        bail!("{name} failed (its messages are above)");
    }
    Ok(())
}

/// The world that `skill build` targets for languages whose components import their whole
/// world (in package `omniforge:skill`, next to the contract).
const BUILD_WORLD: &str = "omniforge:skill/build";

/// What a build world imports beyond logging.
struct WorldImports {
    http: bool,
}

/// Writes the WIT contract to `to`, plus world `build`: the handler export and the imports
/// the manifest's world and permissions allow, no more.
fn write_world(to: &Path, manifest: &Manifest) -> Result<WorldImports> {
    use super::templates::{contract_line, write_wit};
    write_wit(to)?;
    let mut imports = vec!["log", "context"];
    let skill = manifest.skill.world == World::Skill;
    let http = skill && !manifest.permissions.http.is_empty();
    if skill && manifest.permissions.kv {
        imports.push("kv");
    }
    if skill && !manifest.permissions.skills.is_empty() {
        imports.push("skills");
    }
    if skill && !manifest.permissions.secrets.is_empty() {
        imports.push("secrets");
    }
    if http {
        // `import wasi:http/outgoing-handler@…;`, at the contract's WASI version.
        let line = contract_line("import wasi:http/outgoing-handler@")?;
        imports.push(line.trim_start_matches("import ").trim_end_matches(';'));
    }
    let mut world = format!(
        "{}\n\n/// What this project's manifest allows; written by `omniforge skill build`.\n\
         world build {{\n",
        contract_line("package ")?
    );
    for import in imports {
        world.push_str(&format!("  import {import};\n"));
    }
    world.push_str("\n  export handler;\n}\n");
    std::fs::write(to.join("build-world.wit"), world)
        .with_context(|| format!("writing {}", to.display()))?;
    Ok(WorldImports { http })
}

/// The `.wasm` file of the last cdylib in cargo's JSON messages.
fn cdylib_artifact(messages: &[u8]) -> Option<PathBuf> {
    String::from_utf8_lossy(messages)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
        })
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
}

/// Fails with `missing` (what to install) when `program` cannot be run.
fn require(program: &str, args: &[&str], missing: &str) -> Result<()> {
    match Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("{missing}"),
        Err(e) => Err(e).with_context(|| format!("running {program}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_already_in_place_is_not_copied_onto_itself() {
        let dir = tempfile::tempdir().unwrap();
        let built = dir.path().join("target/release/hello.wasm");
        std::fs::create_dir_all(built.parent().unwrap()).unwrap();
        std::fs::write(&built, b"\0asm component").unwrap();
        // The manifest's path to the same file, through `..`.
        std::fs::create_dir_all(dir.path().join("hello")).unwrap();
        let out = dir.path().join("hello/../target/release/hello.wasm");
        copy_unless_same(&built, &out).unwrap();
        assert_eq!(std::fs::read(&built).unwrap(), b"\0asm component");
        // Elsewhere, it is copied.
        let elsewhere = dir.path().join("skill.wasm");
        copy_unless_same(&built, &elsewhere).unwrap();
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"\0asm component");
    }

    #[test]
    fn the_cdylib_is_found_among_cargo_messages() {
        let messages = br#"{"reason":"compiler-artifact","target":{"kind":["lib"]},"filenames":["/t/libserde.rlib"]}
not json
{"reason":"compiler-artifact","target":{"kind":["cdylib"]},"filenames":["/t/wasm32-wasip2/release/greeter.wasm"]}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            cdylib_artifact(messages),
            Some(PathBuf::from("/t/wasm32-wasip2/release/greeter.wasm"))
        );
        assert_eq!(cdylib_artifact(b"{\"reason\":\"build-finished\"}"), None);
    }
}
