//! Work the server hands to child processes of this executable, so that large components
//! and packages never pass through its memory: compiling a component (`omniforge internal
//! compile`) and validating an uploaded package (`omniforge internal validate`). The half
//! gigabyte a large component can take to compile, and the package a validation reads whole,
//! are returned to the system when the child exits instead of staying in the server's
//! allocator. The server plugs [`ProcessCompiler`] and [`ProcessValidator`] into its seams.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{Context, Result};
use async_trait::async_trait;
use clap::Args;
use omniforge_control::packages::{PackageValidator, ValidationError, package_limits};
use omniforge_registry::PackageSummary;
use omniforge_runtime::{Compiler, Engine, LoadError, Runtime, RuntimeConfig};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

/// Runs this executable's internal commands.
#[derive(Debug, Clone)]
pub struct ProcessWorker {
    exe: PathBuf,
}

impl ProcessWorker {
    /// Workers running the current executable.
    pub fn current() -> Result<Self> {
        Ok(Self {
            exe: std::env::current_exe().context("locating the omniforge executable")?,
        })
    }

    fn command(&self, args: &[&std::ffi::OsStr]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.exe);
        command
            .arg("internal")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }
}

/// Compiles in a child process.
#[derive(Debug, Clone)]
pub struct ProcessCompiler(pub ProcessWorker);

#[async_trait]
impl Compiler for ProcessCompiler {
    async fn compile(&self, _engine: &Engine, wasm: Arc<[u8]>) -> Result<Vec<u8>, LoadError> {
        let failed = |what: &str, e: std::io::Error| {
            LoadError::Compile(format!("the compiler process {what}: {e}"))
        };
        let mut child = self
            .0
            .command(&["compile".as_ref()])
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| failed("cannot start", e))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let feed = async move {
            stdin.write_all(&wasm).await?;
            stdin.shutdown().await
        };
        let (fed, output) = tokio::join!(feed, child.wait_with_output());
        let output = output.map_err(|e| failed("failed", e))?;
        if !output.status.success() {
            let message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            return Err(LoadError::InvalidComponent(message));
        }
        fed.map_err(|e| failed("did not take the component", e))?;
        Ok(output.stdout)
    }

    async fn compile_file(
        &self,
        _engine: &Engine,
        wasm: &Path,
        artifact: &Path,
    ) -> Result<(), LoadError> {
        let output = self
            .0
            .command(&[
                "compile".as_ref(),
                "--input".as_ref(),
                wasm.as_os_str(),
                "--output".as_ref(),
                artifact.as_os_str(),
            ])
            .output()
            .await
            .map_err(|e| LoadError::Compile(format!("the compiler process failed: {e}")))?;
        let said = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(LoadError::InvalidComponent(said.trim().to_owned()));
        }
        let peak = said
            .lines()
            .find_map(|l| l.strip_prefix(PEAK_MARKER)?.parse::<u64>().ok());
        tracing::info!(
            peak_rss_mib = peak.map(|b| b >> 20),
            "compiled a component in a child process"
        );
        Ok(())
    }
}

/// Validates packages in a child process.
#[derive(Debug, Clone)]
pub struct ProcessValidator(pub ProcessWorker);

/// What `omniforge internal validate` prints: one JSON document.
#[derive(Debug, Serialize, Deserialize)]
struct ValidateOutput {
    answer: Validated,
    /// The child's peak resident memory, for the server's log.
    peak_rss_bytes: Option<u64>,
}

/// A package's verdict.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Validated {
    Valid(Box<PackageSummary>),
    Invalid { too_large: bool, message: String },
}

/// This process's peak resident memory (Linux; `None` elsewhere).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The marker of the line a compiling child ends its stderr with.
const PEAK_MARKER: &str = "peak_rss_bytes=";

#[async_trait]
impl PackageValidator for ProcessValidator {
    async fn validate(
        &self,
        package: &Path,
        component_out: &Path,
        max_package_bytes: u64,
    ) -> Result<PackageSummary, ValidationError> {
        let limit = max_package_bytes.to_string();
        let output = self
            .0
            .command(&[
                "validate".as_ref(),
                "--package".as_ref(),
                package.as_os_str(),
                "--component-out".as_ref(),
                component_out.as_os_str(),
                "--max-package-bytes".as_ref(),
                limit.as_ref(),
            ])
            .output()
            .await
            .map_err(|e| ValidationError::Failed(format!("the validator process: {e}")))?;
        if !output.status.success() {
            let message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            return Err(ValidationError::Failed(format!(
                "the validator process failed ({}): {message}",
                output.status
            )));
        }
        let answer: ValidateOutput = match serde_json::from_slice(&output.stdout) {
            Ok(answer) => answer,
            Err(e) => {
                return Err(ValidationError::Failed(format!(
                    "the validator process answered something else: {e}"
                )));
            }
        };
        tracing::info!(
            peak_rss_mib = answer.peak_rss_bytes.map(|b| b >> 20),
            "validated a package in a child process"
        );
        match answer.answer {
            Validated::Valid(summary) => Ok(*summary),
            Validated::Invalid { too_large, message } => {
                Err(ValidationError::Invalid { too_large, message })
            }
        }
    }
}

/// Arguments of `omniforge internal compile`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The component (default: stdin).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Where to write the artifact (default: stdout).
    #[arg(long)]
    output: Option<PathBuf>,
}

/// `omniforge internal compile`: a component in, the compiled artifact out, for an engine
/// configured like the server's.
pub fn compile(args: CompileArgs) -> Result<()> {
    let wasm = match &args.input {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            let mut wasm = Vec::new();
            std::io::stdin()
                .read_to_end(&mut wasm)
                .context("reading the component from stdin")?;
            wasm
        }
    };
    let runtime = Runtime::new(RuntimeConfig::default()).context("starting the engine")?;
    let artifact = runtime
        .engine()
        .precompile_component(&wasm)
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    drop(wasm);
    match &args.output {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            file.write_all(&artifact)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => std::io::stdout()
            .write_all(&artifact)
            .context("writing the artifact")?,
    }
    if let Some(peak) = peak_rss_bytes() {
        eprintln!("{PEAK_MARKER}{peak}");
    }
    Ok(())
}

/// Arguments of `omniforge internal validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The uploaded package.
    #[arg(long)]
    package: PathBuf,
    /// Where to write its runnable component.
    #[arg(long)]
    component_out: PathBuf,
    /// The server's package size limit.
    #[arg(long)]
    max_package_bytes: u64,
}

/// `omniforge internal validate`: checks a package file as the server would, writes its
/// runnable component, and prints the summary (or why it is invalid) as JSON. Exits non-zero
/// only when it could not do its job.
pub fn validate(args: ValidateArgs) -> Result<()> {
    let limits = package_limits(args.max_package_bytes);
    let validated =
        omniforge_registry::validate_package_file(&args.package, &args.component_out, &limits)
            .map_err(ValidationError::from);
    let answer = match validated {
        Ok(summary) => Validated::Valid(Box::new(summary)),
        Err(ValidationError::Invalid { too_large, message }) => {
            Validated::Invalid { too_large, message }
        }
        Err(ValidationError::Failed(cause)) => {
            anyhow::bail!("reading the package or writing its component: {cause}")
        }
    };
    let output = ValidateOutput {
        answer,
        peak_rss_bytes: peak_rss_bytes(),
    };
    serde_json::to_writer(std::io::stdout(), &output).context("writing the answer")?;
    Ok(())
}
