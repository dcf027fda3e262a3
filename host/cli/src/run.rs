//! `omniforge run`: load a component or a package, invoke it once with the given input and
//! limits, print the output on stdout and the usage on stderr.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use omniforge_registry::{
    PackageLimits, Permissions, RequestedLimits, SkillName, ValidatedPackage, validate_package,
};
use omniforge_runtime::capabilities::{HostPattern, SecretSource, SecretSourceError, SecretValue};
use omniforge_runtime::{
    Grants, InvocationContext, InvocationLimits, InvocationReport, InvocationRequest, Outcome,
    Runtime, RuntimeConfig, TenantId,
};

use crate::exit::{
    LIMIT as EXIT_LIMIT, SKILL_ERROR as EXIT_SKILL_ERROR, TRAP as EXIT_TRAP, USAGE as EXIT_USAGE,
};

/// Arguments of `omniforge run`.
#[derive(Debug, Args)]
#[command(
    after_help = crate::exit::TABLE
)]
pub struct RunArgs {
    /// The skill: a component (`.wasm`) or a package (`.zip`, whose manifest provides
    /// limits and permissions; flags override them).
    skill: PathBuf,
    /// The input JSON; `-` reads it from stdin, `@FILE` from a file.
    #[arg(long, short, default_value = "{}")]
    input: String,
    /// CPU budget in fuel units (one per wasm instruction; a few billion per second of CPU)
    /// [default: the manifest's, within a server's default tenant policy (10000000000)].
    #[arg(long)]
    fuel: Option<u64>,
    /// Run without a CPU budget (the timeout still applies).
    #[arg(long, conflicts_with = "fuel")]
    no_fuel: bool,
    /// Memory limit in MiB, over all of the skill's linear memories [default: the
    /// manifest's, within a server's default tenant policy (256)].
    #[arg(long)]
    memory_mb: Option<u64>,
    /// Wall-clock limit in milliseconds, including time spent waiting on the network
    /// [default: the manifest's, within a server's default tenant policy (30000)].
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Largest output in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_output_bytes: u64,
    /// Allow outbound HTTP to `[scheme://]host[:port]` (`*.example.com`, `*` and `:*`
    /// wildcards; the scheme defaults to https), besides a package's own. Unlike a package's
    /// patterns, one naming a private address literally (`127.0.0.1:8080`) allows it.
    /// Repeatable.
    #[arg(long = "allow-http", value_name = "HOST")]
    allow_http: Vec<HostPattern>,
    /// Let allowed host names resolve to loopback and private addresses.
    #[arg(long)]
    allow_private_network: bool,
    /// Grant the key-value store (in memory, for this run only); a package whose manifest
    /// declares `kv = true` gets it anyway.
    #[arg(long)]
    kv: bool,
    /// Grant the secret NAME with VALUE, or with the value of environment variable NAME when
    /// no `=VALUE` is given (which keeps it out of the process list). Repeatable.
    #[arg(long = "secret", value_name = "NAME[=VALUE]")]
    secrets: Vec<String>,
    /// Directory of the compiled-artifact cache.
    #[arg(long, env = "OMNIFORGE_CACHE_DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Compile without reading or writing the artifact cache.
    #[arg(long)]
    no_cache: bool,
    /// Print the whole report (outcome, output, usage) as JSON on stdout.
    #[arg(long)]
    report: bool,
}

/// Runs the command; errors before the invocation exit with [`EXIT_USAGE`].
pub async fn run(args: RunArgs) -> ExitCode {
    match invoke(&args).await {
        Ok(report) => finish(&args, &report),
        Err(e) if e.downcast_ref::<InvalidInput>().is_some() => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_SKILL_ERROR)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

async fn invoke(args: &RunArgs) -> Result<InvocationReport> {
    let input = read_input(&args.input)?;
    let skill = LocalSkill::open(&args.skill)?;
    if let Some(schema) = &skill.input_schema {
        check_input(schema, &input)?;
    }
    let config = RuntimeConfig {
        cache_dir: cache_dir(args),
        ..RuntimeConfig::default()
    };
    let secrets = LocalSecrets::from_args(&args.secrets)?;
    let declared: Vec<String> = secrets.0.keys().cloned().collect();
    let runtime = Runtime::builder(config)
        .secret_source(std::sync::Arc::new(secrets))
        .build()
        .context("starting the runtime")?;
    let loaded = runtime
        .load(&skill.component)
        .await
        .with_context(|| format!("loading {}", args.skill.display()))?;
    // What a server would give the package, then what the command line says instead.
    let mut limits = skill.manifest_limits();
    if let Some(fuel) = args.fuel {
        limits.fuel = Some(fuel);
    }
    if args.no_fuel {
        limits.fuel = None;
    }
    if let Some(mb) = args.memory_mb {
        limits.memory_bytes = mb.saturating_mul(1 << 20);
    }
    if let Some(ms) = args.timeout_ms {
        limits.timeout = Duration::from_millis(ms);
    }
    limits.output_bytes = args.max_output_bytes;
    let mut grants = skill.manifest_grants();
    grants.kv |= args.kv;
    grants.secrets.extend(declared);
    grants.http.operator_allowed = args.allow_http.clone();
    grants.http.allow_private_networks = args.allow_private_network;
    let request = skill.request(input, limits, grants);
    Ok(runtime.invoke(&loaded, request).await)
}

/// The name a bare component runs under: `local/` and its file name, spelt as a skill name
/// (`My_Skill.wasm` runs as `local/my-skill`).
fn local_name(stem: &str) -> SkillName {
    let part: String = stem
        .chars()
        .take(64)
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let part = part.trim_matches('-');
    let part = if part.is_empty() { "skill" } else { part };
    format!("local/{part}")
        .parse()
        .expect("lowercase letters, digits and inner '-' make a valid name")
}

/// A skill to run locally: a bare component, or a validated package and its manifest.
pub struct LocalSkill {
    name: SkillName,
    version: String,
    /// The component's bytes.
    pub component: Vec<u8>,
    limits: RequestedLimits,
    permissions: Permissions,
    /// The input schema, when the package has one.
    pub input_schema: Option<serde_json::Value>,
}

impl LocalSkill {
    fn open(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if !bytes.starts_with(b"PK\x03\x04") {
            let stem = path
                .file_stem()
                .map_or("skill".into(), |s| s.to_string_lossy());
            return Ok(Self {
                name: local_name(&stem),
                version: "0.0.0".into(),
                component: bytes,
                limits: RequestedLimits::default(),
                permissions: Permissions::default(),
                input_schema: None,
            });
        }
        let package = validate_package(&bytes, &PackageLimits::default())
            .with_context(|| format!("{} is not a valid package", path.display()))?;
        Ok(Self::from_package(package))
    }

    /// The skill of a validated package.
    pub fn from_package(package: ValidatedPackage) -> Self {
        let manifest = package.manifest;
        Self {
            name: manifest.package.name,
            version: manifest.package.version.to_string(),
            component: package.component,
            limits: manifest.limits,
            permissions: manifest.permissions,
            input_schema: package.input_schema,
        }
    }

    /// The limits a server would give it under the default tenant policy
    /// (omniforge_control's one mapping).
    pub fn manifest_limits(&self) -> InvocationLimits {
        omniforge_control::limits::default_limits(&self.limits)
    }

    /// What its manifest grants (the same mapping as a server's, with no tenant allow list).
    pub fn manifest_grants(&self) -> Grants {
        omniforge_control::limits::grants(&self.permissions, None)
    }

    /// One invocation of it, as tenant `local`.
    pub fn request(
        &self,
        input: String,
        limits: InvocationLimits,
        grants: Grants,
    ) -> InvocationRequest {
        InvocationRequest {
            context: InvocationContext {
                tenant: TenantId::new("local"),
                skill: self.name.clone(),
                version: self.version.clone(),
                request_id: request_id(),
                trace_parent: None,
            },
            input,
            limits,
            grants,
            callers: Vec::new(),
            cancel: None,
            task: None,
        }
    }
}

/// Checks the input against the package's input schema, naming where it fails.
pub fn check_input(schema: &serde_json::Value, input: &str) -> Result<()> {
    let value: serde_json::Value = serde_json::from_str(input).context("the input is not JSON")?;
    let validator = jsonschema::validator_for(schema).context("the package's input schema")?;
    if let Some(error) = validator.iter_errors(&value).next() {
        let at = error.instance_path().to_string();
        let at = if at.is_empty() { "/".into() } else { at };
        return Err(InvalidInput(format!("invalid input at {at}: {error}")).into());
    }
    Ok(())
}

/// Input rejected by the package's schema: exits like a skill error, not a usage error.
#[derive(Debug)]
pub struct InvalidInput(pub String);

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

fn finish(args: &RunArgs, report: &InvocationReport) -> ExitCode {
    if args.report {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("reports serialize")
        );
    } else if let Some(output) = report.outcome.output() {
        println!("{output}");
    }
    let usage = &report.usage;
    eprintln!(
        "usage: fuel={} wall={:.3}ms peak_memory={}KiB logs={} (dropped {}) http_requests={}",
        usage.fuel_consumed,
        usage.wall_time_us as f64 / 1000.0,
        usage.peak_memory_bytes / 1024,
        usage.log_messages,
        usage.log_dropped,
        usage.http_requests,
    );
    match &report.outcome {
        Outcome::Ok { .. } => ExitCode::SUCCESS,
        other => {
            eprintln!("error: {other}");
            ExitCode::from(match other {
                Outcome::Trap { .. } => EXIT_TRAP,
                o if o.is_limit() => EXIT_LIMIT,
                _ => EXIT_SKILL_ERROR,
            })
        }
    }
}

/// Reads an `--input` argument: JSON text, `-` for stdin, `@FILE` for a file.
pub fn read_input(arg: &str) -> Result<String> {
    if arg == "-" {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("reading the input from stdin")?;
        return Ok(input);
    }
    if let Some(path) = arg.strip_prefix('@') {
        return std::fs::read_to_string(path)
            .with_context(|| format!("reading the input from {path}"));
    }
    if arg.is_empty() {
        bail!("--input is empty; give JSON such as '{{}}'");
    }
    Ok(arg.to_owned())
}

/// The explicit directory, or `$XDG_CACHE_HOME/omniforge/artifacts` (`~/.cache/...`).
fn cache_dir(args: &RunArgs) -> Option<PathBuf> {
    if args.no_cache {
        return None;
    }
    args.cache_dir.clone().or_else(default_cache_dir)
}

/// `$OMNIFORGE_CACHE_DIR`, else `$XDG_CACHE_HOME/omniforge/artifacts`, else
/// `~/.cache/omniforge/artifacts`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("OMNIFORGE_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("omniforge").join("artifacts"))
}

fn request_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("run-{nanos:x}")
}

/// The secrets `--secret` gives one run, whatever tenant asks.
struct LocalSecrets(std::collections::BTreeMap<String, SecretValue>);

impl LocalSecrets {
    fn from_args(args: &[String]) -> Result<Self> {
        let mut secrets = std::collections::BTreeMap::new();
        for arg in args {
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name, value.to_owned()),
                None => (
                    arg.as_str(),
                    std::env::var(arg).with_context(|| {
                        format!("--secret {arg}: no environment variable {arg} holds its value")
                    })?,
                ),
            };
            name.parse::<omniforge_registry::SecretName>()
                .with_context(|| format!("--secret {name}"))?;
            secrets.insert(name.to_owned(), SecretValue::new(value));
        }
        Ok(Self(secrets))
    }
}

#[async_trait::async_trait]
impl SecretSource for LocalSecrets {
    async fn get(
        &self,
        _tenant: &omniforge_runtime::TenantId,
        name: &str,
    ) -> Result<Option<SecretValue>, SecretSourceError> {
        Ok(self.0.get(name).cloned())
    }
}
