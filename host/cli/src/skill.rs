//! `omniforge skill …`: create, build and test skill projects (through [`crate::author`]);
//! pack, inspect, sign and verify skill packages; publish, invoke, list, search and yank them
//! on a server (through [`crate::remote`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use omniforge_registry::{
    PackageLimits, SecretName, SigningKey, ValidatedPackage, VerifyingKey, pack_dir, sign_package,
    validate_package,
};

/// Package commands.
#[derive(Debug, Subcommand)]
pub enum SkillCommand {
    /// Create a skill project from a template (Rust, Python, JavaScript or C), with the SDK.
    New(crate::author::NewArgs),
    /// Build the project's component with its language's toolchain and check it.
    Build(crate::author::BuildArgs),
    /// Run the project's test cases (tests.json) locally in the real runtime.
    Test(crate::author::TestArgs),
    /// Build a package (ZIP) from a directory with omniforge.toml and the built component.
    Pack(PackArgs),
    /// Show a package's manifest, digests, imports, exports, permissions and signature.
    Inspect(InspectArgs),
    /// Sign a package with a secret key (adds or replaces omniforge.sig).
    Sign(SignArgs),
    /// Check a package's signature against a public key.
    Verify(VerifyArgs),
    /// Upload a package (or a directory, packed first) to a server.
    Publish(crate::remote::PublishArgs),
    /// Invoke a published skill on a server and print its output.
    Invoke(crate::remote::InvokeArgs),
    /// List the skills a server shows you.
    List(crate::remote::ListArgs),
    /// Search a server's skills.
    Search(crate::remote::SearchArgs),
    /// Yank a version on a server: requirements skip it from now on.
    Yank(crate::remote::YankArgs),
    /// Undo a yank.
    Unyank(crate::remote::YankArgs),
}

/// Arguments of `omniforge skill pack`.
#[derive(Debug, Args)]
pub struct PackArgs {
    /// Directory holding omniforge.toml.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The built component, instead of the manifest's `[skill] component`.
    #[arg(long)]
    component: Option<PathBuf>,
    /// Where to write the package (default: `<namespace>-<name>-<version>.zip` here).
    #[arg(long, short)]
    out: Option<PathBuf>,
}

/// Arguments of `omniforge skill inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The package.
    package: PathBuf,
    /// Also verify the signature with this public key.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `omniforge skill sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The package.
    package: PathBuf,
    /// The secret key file (from `omniforge key generate`).
    #[arg(long)]
    key: PathBuf,
    /// Where to write the signed package (default: replace the input).
    #[arg(long, short)]
    out: Option<PathBuf>,
}

/// Arguments of `omniforge skill verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The package.
    package: PathBuf,
    /// The public key file.
    #[arg(long)]
    key: PathBuf,
}

/// Runs a `skill` subcommand.
pub async fn run(command: SkillCommand) -> ExitCode {
    use crate::{remote, report};
    let limits = PackageLimits::default();
    match command {
        SkillCommand::New(args) => report(crate::author::new(&args)),
        SkillCommand::Build(args) => report(crate::author::build(&args)),
        SkillCommand::Test(args) => report(crate::author::test(&args).await),
        SkillCommand::Pack(args) => report(pack(&args, &limits)),
        SkillCommand::Inspect(args) => report(inspect(&args, &limits)),
        SkillCommand::Sign(args) => report(sign(&args, &limits)),
        SkillCommand::Verify(args) => report(verify(&args, &limits)),
        SkillCommand::Publish(args) => report(remote::publish(args).await),
        SkillCommand::Invoke(args) => remote::invoke(args).await,
        SkillCommand::List(args) => report(remote::list(args).await),
        SkillCommand::Search(args) => report(remote::search(args).await),
        SkillCommand::Yank(args) => report(remote::yank(args, true).await),
        SkillCommand::Unyank(args) => report(remote::yank(args, false).await),
    }
}

/// Reads and validates a package file.
pub fn read_package(path: &Path, limits: &PackageLimits) -> Result<ValidatedPackage> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    validate_package(&bytes, limits)
        .with_context(|| format!("{} is not a valid package", path.display()))
}

fn pack(args: &PackArgs, limits: &PackageLimits) -> Result<()> {
    let (bytes, package) = pack_dir(&args.dir, args.component.as_deref(), limits)
        .with_context(|| format!("packing {}", args.dir.display()))?;
    let meta = &package.manifest.package;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}-{}-{}.zip",
            meta.name.namespace(),
            meta.name.name(),
            meta.version
        ))
    });
    write_atomically(&out, &bytes)?;
    println!("packed {} {} -> {}", meta.name, meta.version, out.display());
    println!(
        "digest {} ({} bytes)",
        package.package_sha256, package.package_size
    );
    Ok(())
}

fn inspect(args: &InspectArgs, limits: &PackageLimits) -> Result<()> {
    let package = read_package(&args.package, limits)?;
    let status = match &args.key {
        None => match &package.signature {
            None => "unsigned".to_owned(),
            Some(sig) => format!("signed by key {} (not verified: pass --key)", sig.key_id),
        },
        Some(key) => match package.verify_signature(&read_public_key(key)?) {
            Ok(()) => format!(
                "valid, key {}",
                package.signature.as_ref().map_or("", |s| &s.key_id)
            ),
            Err(e) => format!("INVALID: {e}"),
        },
    };
    if args.json {
        let json = serde_json::json!({
            "manifest": package.manifest,
            "package_sha256": package.package_sha256,
            "package_size": package.package_size,
            "manifest_sha256": package.manifest_sha256,
            "wasm_sha256": package.wasm_sha256,
            "component_sha256": package.component_sha256,
            "component": package.component_info,
            "files": package.files,
            "signature": status,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    print!("{}", describe(&package, &status));
    Ok(())
}

fn describe(package: &ValidatedPackage, signature: &str) -> String {
    let m = &package.manifest;
    let p = &m.package;
    let mut out = String::new();
    let _ = writeln!(out, "{} {}", p.name, p.version);
    let _ = writeln!(out, "  {}", p.description);
    let _ = writeln!(out, "license:    {}", p.license);
    let _ = writeln!(out, "world:      {}", m.skill.world.wit_name());
    let _ = writeln!(
        out,
        "package:    {} ({} bytes)",
        package.package_sha256, package.package_size
    );
    let _ = writeln!(out, "manifest:   {}", package.manifest_sha256);
    let _ = writeln!(out, "skill.wasm: {}", package.wasm_sha256);
    if package.component_info.adapted_from_core_module {
        let _ = writeln!(
            out,
            "component:  {} (adapted from a wasip1 core module)",
            package.component_sha256
        );
    }
    let _ = writeln!(out, "signature:  {signature}");
    let perms = &m.permissions;
    let mut granted = Vec::new();
    if !perms.http.is_empty() {
        let hosts: Vec<String> = perms.http.iter().map(ToString::to_string).collect();
        granted.push(format!("http [{}]", hosts.join(", ")));
    }
    if perms.kv {
        granted.push("kv".into());
    }
    if !perms.secrets.is_empty() {
        let names: Vec<&str> = perms.secrets.iter().map(SecretName::as_str).collect();
        granted.push(format!("secrets [{}]", names.join(", ")));
    }
    if perms.llm {
        granted.push("llm".into());
    }
    if !perms.skills.is_empty() {
        let skills: Vec<String> = perms
            .skills
            .iter()
            .map(|(n, r)| format!("{n} {r}"))
            .collect();
        granted.push(format!("skills [{}]", skills.join(", ")));
    }
    let granted = if granted.is_empty() {
        "none".into()
    } else {
        granted.join("; ")
    };
    let _ = writeln!(out, "permissions: {granted}");
    let l = &m.limits;
    let show = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
    let _ = writeln!(
        out,
        "limits:     fuel {}, memory {} MiB, timeout {} ms",
        show(l.fuel),
        show(l.memory_mb),
        show(l.timeout_ms)
    );
    let _ = writeln!(out, "imports:");
    for import in &package.component_info.imports {
        let _ = writeln!(out, "  {import}");
    }
    let _ = writeln!(out, "exports:");
    for export in &package.component_info.exports {
        let _ = writeln!(out, "  {export}");
    }
    let _ = writeln!(out, "files:");
    for (name, size) in &package.files {
        let _ = writeln!(out, "  {name} ({size} bytes)");
    }
    out
}

fn sign(args: &SignArgs, limits: &PackageLimits) -> Result<()> {
    let text = std::fs::read_to_string(&args.key)
        .with_context(|| format!("reading {}", args.key.display()))?;
    let key = SigningKey::from_text(&text).with_context(|| format!("{}", args.key.display()))?;
    let bytes = std::fs::read(&args.package)
        .with_context(|| format!("reading {}", args.package.display()))?;
    let signed = sign_package(&bytes, &key, limits)
        .with_context(|| format!("{} is not a valid package", args.package.display()))?;
    let out = args.out.as_ref().unwrap_or(&args.package);
    write_atomically(out, &signed)?;
    println!(
        "signed {} with key {}",
        out.display(),
        key.verifying_key().key_id()
    );
    Ok(())
}

fn verify(args: &VerifyArgs, limits: &PackageLimits) -> Result<()> {
    let package = read_package(&args.package, limits)?;
    let key = read_public_key(&args.key)?;
    if let Err(e) = package.verify_signature(&key) {
        bail!("{}: signature check failed: {e}", args.package.display());
    }
    println!(
        "{}: signature valid (key {})",
        args.package.display(),
        key.key_id()
    );
    Ok(())
}

fn read_public_key(path: &Path) -> Result<VerifyingKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    VerifyingKey::from_text(&text).with_context(|| format!("{}", path.display()))
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// an interrupted write never leaves a half-written package.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
