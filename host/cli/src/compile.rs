//! Compiling components in a child process (`omniforge internal compile`), so the half
//! gigabyte a large component can take to compile is returned to the system when the child
//! exits instead of staying in the server's allocator. The server plugs
//! [`ProcessCompiler`] into the runtime's compile seam.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{Context, Result};
use async_trait::async_trait;
use omniforge_runtime::{Compiler, Engine, LoadError, Runtime, RuntimeConfig};
use tokio::io::AsyncWriteExt;

/// Compiles by running this executable's `internal compile` in a child process.
#[derive(Debug, Clone)]
pub struct ProcessCompiler {
    exe: PathBuf,
}

impl ProcessCompiler {
    /// A compiler running the current executable.
    pub fn current() -> Result<Self> {
        Ok(Self {
            exe: std::env::current_exe().context("locating the omniforge executable")?,
        })
    }
}

#[async_trait]
impl Compiler for ProcessCompiler {
    async fn compile(&self, _engine: &Engine, wasm: Arc<[u8]>) -> Result<Vec<u8>, LoadError> {
        let failed = |what: &str, e: std::io::Error| {
            LoadError::Compile(format!("the compiler process {what}: {e}"))
        };
        let mut child = tokio::process::Command::new(&self.exe)
            .args(["internal", "compile"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
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
}

/// `omniforge internal compile`: a component on stdin, the compiled artifact on stdout,
/// for an engine configured like the server's.
pub fn compile_stdin() -> Result<()> {
    let mut wasm = Vec::new();
    std::io::stdin()
        .read_to_end(&mut wasm)
        .context("reading the component from stdin")?;
    let runtime = Runtime::new(RuntimeConfig::default()).context("starting the engine")?;
    let artifact = runtime
        .engine()
        .precompile_component(&wasm)
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    std::io::stdout()
        .write_all(&artifact)
        .context("writing the artifact")?;
    Ok(())
}
