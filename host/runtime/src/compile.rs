//! The compilation seam: turning component bytes into a compiled artifact for the engine.
//!
//! Compiling a large component peaks near half a gigabyte that the allocator keeps. The CLI
//! compiles in-process ([`InProcessCompiler`]); a server plugs in a compiler that works away
//! from its serving memory (a child process or a bounded worker) through the same trait.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use wasmtime::Engine;

use crate::error::LoadError;

/// Produces a serialized compiled artifact (what `Engine::precompile_component` returns) that
/// the runtime's engine can deserialize. Implementations must compile with a configuration
/// compatible with `engine`.
#[async_trait]
pub trait Compiler: Send + Sync + 'static {
    /// Compiles `wasm` for `engine`.
    async fn compile(&self, engine: &Engine, wasm: Arc<[u8]>) -> Result<Vec<u8>, LoadError>;

    /// Compiles the component in the file `wasm` and writes the artifact to the file
    /// `artifact` (created, empty, by the caller). A compiler working away from this process
    /// overrides it so that neither the component nor the artifact passes through this
    /// process's memory; the default reads the file and calls [`Compiler::compile`].
    async fn compile_file(
        &self,
        engine: &Engine,
        wasm: &Path,
        artifact: &Path,
    ) -> Result<(), LoadError> {
        let compiled = self
            .compile(engine, read_component(wasm).await?.into())
            .await?;
        tokio::fs::write(artifact, compiled)
            .await
            .map_err(|e| LoadError::Compile(format!("writing the artifact: {e}")))
    }
}

/// Reads a component file, naming the file when that fails.
pub(crate) async fn read_component(path: &Path) -> Result<Vec<u8>, LoadError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })
}

/// Compiles on a blocking thread of this process with Cranelift.
#[derive(Debug, Clone, Copy, Default)]
pub struct InProcessCompiler;

#[async_trait]
impl Compiler for InProcessCompiler {
    async fn compile(&self, engine: &Engine, wasm: Arc<[u8]>) -> Result<Vec<u8>, LoadError> {
        let engine = engine.clone();
        tokio::task::spawn_blocking(move || engine.precompile_component(&wasm))
            .await
            .map_err(|e| LoadError::Compile(format!("the compiler thread failed: {e}")))?
            .map_err(|e| LoadError::InvalidComponent(format!("{e:#}")))
    }
}
