//! [`Runtime`]: the engine, the linker, the caches, and loading components.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use crate::ComponentDigest;
use crate::bindings::SkillPre;
use crate::cache::ArtifactCache;
use crate::capabilities::log::TenantLogRate;
use crate::capabilities::{KvStore, MemoryKvStore, SecretSource, SkillCaller};
use crate::compile::{Compiler, InProcessCompiler, read_component};
use crate::concurrency::MemoryBudget;
use crate::config::{DeadlineEnforcement, RuntimeConfig};
use crate::engine::{build_engine, start_epoch_ticker};
use crate::error::{LoadError, RuntimeError};
use crate::guests::GuestThreads;
use crate::invoke::Invoker;
use crate::state::{Capabilities, InvocationState};

/// Runs skills. Build one per process and share it (`Arc<Runtime>`): it owns the engine, the
/// linker with every capability, and the caches of compiled skills.
pub struct Runtime {
    engine: Engine,
    linker: Linker<InvocationState>,
    compiler: Arc<dyn Compiler>,
    artifacts: Option<ArtifactCache>,
    loaded: Mutex<LruCache<ComponentDigest, Arc<LoadedSkill>>>,
    pub(crate) invoker: Arc<Invoker>,
    pub(crate) guests: GuestThreads,
    stats: Counters,
}

/// Builds a [`Runtime`] with non-default services.
pub struct RuntimeBuilder {
    config: RuntimeConfig,
    kv: Option<Arc<dyn KvStore>>,
    secrets: Option<Arc<dyn SecretSource>>,
    skill_caller: Option<Arc<dyn SkillCaller>>,
    compiler: Option<Arc<dyn Compiler>>,
}

impl RuntimeBuilder {
    /// Uses `store` for the `kv` capability (default: a fresh [`MemoryKvStore`]).
    pub fn kv_store(mut self, store: Arc<dyn KvStore>) -> Self {
        self.kv = Some(store);
        self
    }

    /// Reads the `secrets` capability's values from `source` (default: none, and every
    /// declared secret answers `unavailable`).
    pub fn secret_source(mut self, source: Arc<dyn SecretSource>) -> Self {
        self.secrets = Some(source);
        self
    }

    /// Sends the `skills` capability's calls to `caller` (default: none, and calls answer
    /// `denied`).
    pub fn skill_caller(mut self, caller: Arc<dyn SkillCaller>) -> Self {
        self.skill_caller = Some(caller);
        self
    }

    /// Uses `compiler` for cold loads (default: [`InProcessCompiler`]).
    pub fn compiler(mut self, compiler: Arc<dyn Compiler>) -> Self {
        self.compiler = Some(compiler);
        self
    }

    /// Builds the engine, starts its epoch ticker and opens the artifact cache.
    pub fn build(self) -> Result<Runtime, RuntimeError> {
        let engine = build_engine(&self.config)?;
        match self.config.deadlines {
            DeadlineEnforcement::Epochs { tick } => start_epoch_ticker(&engine, tick)?,
            DeadlineEnforcement::FuelYields { .. } => {}
            DeadlineEnforcement::HostCallsOnly => tracing::warn!(
                "running guest code is not interrupted at deadlines: only fuel stops a loop"
            ),
        }
        let linker = build_linker(&engine)?;
        let artifacts = self
            .config
            .cache_dir
            .as_deref()
            .map(|dir| ArtifactCache::open(dir, &engine))
            .transpose()?;
        let capacity = NonZeroUsize::new(self.config.loaded_skill_capacity.max(1)).unwrap();
        Ok(Runtime {
            engine: engine.clone(),
            linker,
            compiler: self.compiler.unwrap_or_else(|| Arc::new(InProcessCompiler)),
            artifacts,
            loaded: Mutex::new(LruCache::new(capacity)),
            guests: GuestThreads::new(self.config.cpu_slots),
            invoker: Arc::new(Invoker {
                engine,
                concurrency: Arc::default(),
                memory_budget: self
                    .config
                    .memory_budget_bytes
                    .map(|bytes| MemoryBudget::new(bytes, self.config.memory_budget_wait)),
                kv: self
                    .kv
                    .unwrap_or_else(|| Arc::new(MemoryKvStore::default())),
                secrets: self.secrets,
                skill_caller: self.skill_caller,
                log_rate: Arc::new(TenantLogRate::new(&self.config.log)),
                config: self.config,
            }),
            stats: Counters::default(),
        })
    }
}

fn build_linker(engine: &Engine) -> Result<Linker<InvocationState>, RuntimeError> {
    let mut linker = Linker::new(engine);
    let link = |e: wasmtime::Error| RuntimeError::Engine(format!("cannot link the host: {e:#}"));
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
    Capabilities::add_to_linker(&mut linker).map_err(link)?;
    Ok(linker)
}

/// A component compiled and linked, ready to be instantiated for each invocation.
pub struct LoadedSkill {
    digest: ComponentDigest,
    pub(crate) pre: SkillPre<InvocationState>,
    imports: Vec<String>,
}

impl LoadedSkill {
    /// The component's SHA-256.
    pub fn digest(&self) -> ComponentDigest {
        self.digest
    }

    /// Names of the interfaces and functions the component imports.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }
}

/// How loads were served, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Components compiled.
    pub compiled: u64,
    /// Components loaded from the on-disk artifact cache.
    pub loaded_from_disk: u64,
    /// Loads answered from the in-memory cache.
    pub memory_hits: u64,
}

#[derive(Debug, Default)]
struct Counters {
    compiled: AtomicU64,
    loaded_from_disk: AtomicU64,
    memory_hits: AtomicU64,
}

impl Runtime {
    /// A runtime with `config` and default services.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        Self::builder(config).build()
    }

    /// A builder to replace the default services.
    pub fn builder(config: RuntimeConfig) -> RuntimeBuilder {
        RuntimeBuilder {
            config,
            kv: None,
            secrets: None,
            skill_caller: None,
            compiler: None,
        }
    }

    /// The engine (a compiler process builds its artifacts with an engine configured alike).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.invoker.config
    }

    /// How loads have been served so far.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.stats.compiled.load(Ordering::Relaxed),
            loaded_from_disk: self.stats.loaded_from_disk.load(Ordering::Relaxed),
            memory_hits: self.stats.memory_hits.load(Ordering::Relaxed),
        }
    }

    /// Reads and loads a component file.
    pub async fn load_file(&self, path: impl AsRef<Path>) -> Result<Arc<LoadedSkill>, LoadError> {
        self.load(&read_component(path.as_ref()).await?).await
    }

    /// Loads a component: from memory if loaded recently, else from the artifact cache, else
    /// by compiling it (and caching the artifact). Fails if the bytes are not a component
    /// exporting the `omniforge:skill` handler, or import what the runtime does not provide.
    pub async fn load(&self, wasm: &[u8]) -> Result<Arc<LoadedSkill>, LoadError> {
        let digest = ComponentDigest::of(wasm);
        if let Some(skill) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
        {
            self.stats.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Arc::clone(skill));
        }
        let cached = self
            .artifacts
            .as_ref()
            .and_then(|cache| cache.load(&self.engine, &digest));
        let component = match cached {
            Some(component) => {
                self.stats.loaded_from_disk.fetch_add(1, Ordering::Relaxed);
                component
            }
            None => self.compile(&digest, wasm).await?,
        };
        let skill = Arc::new(self.link(digest, &component)?);
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(digest, Arc::clone(&skill));
        Ok(skill)
    }

    /// The skill of `digest` if it is compiled: loaded in memory, or in the artifact cache
    /// (then loaded from there). Never compiles.
    pub fn load_compiled(
        &self,
        digest: &ComponentDigest,
    ) -> Result<Option<Arc<LoadedSkill>>, LoadError> {
        if let Some(skill) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
        {
            self.stats.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(Arc::clone(skill)));
        }
        let Some(component) = self
            .artifacts
            .as_ref()
            .and_then(|cache| cache.load(&self.engine, digest))
        else {
            return Ok(None);
        };
        self.stats.loaded_from_disk.fetch_add(1, Ordering::Relaxed);
        let skill = Arc::new(self.link(*digest, &component)?);
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(*digest, Arc::clone(&skill));
        Ok(Some(skill))
    }

    /// Whether `digest` is compiled (in memory or in the artifact cache).
    pub fn is_compiled(&self, digest: &ComponentDigest) -> bool {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(digest)
            || self
                .artifacts
                .as_ref()
                .is_some_and(|cache| cache.contains(digest))
    }

    /// Compiles the component in the file `wasm`, whose SHA-256 is `digest` (the caller
    /// hashed and validated it), into the artifact cache. With a compiler that works in
    /// another process, neither the component nor the artifact enters this process's memory
    /// (it is mapped from the cache when first loaded). Without an artifact cache the skill is
    /// compiled and kept loaded instead.
    pub async fn precompile_file(
        &self,
        digest: ComponentDigest,
        wasm: &Path,
    ) -> Result<(), LoadError> {
        if self.is_compiled(&digest) {
            return Ok(());
        }
        let Some(cache) = &self.artifacts else {
            self.load(&read_component(wasm).await?).await?;
            return Ok(());
        };
        self.stats.compiled.fetch_add(1, Ordering::Relaxed);
        let unwritable = |e: std::io::Error| LoadError::Compile(format!("the artifact cache: {e}"));
        let artifact = cache.temporary().map_err(unwritable)?;
        self.compiler
            .compile_file(&self.engine, wasm, artifact.path())
            .await?;
        cache.adopt(&digest, artifact).map_err(unwritable)?;
        // Linking checks what the compiler produced now, not at the first invocation.
        match self.load_compiled(&digest)? {
            Some(_) => Ok(()),
            None => Err(LoadError::Compile(
                "the compiled artifact is unusable".into(),
            )),
        }
    }

    async fn compile(&self, digest: &ComponentDigest, wasm: &[u8]) -> Result<Component, LoadError> {
        self.stats.compiled.fetch_add(1, Ordering::Relaxed);
        let artifact = self.compiler.compile(&self.engine, wasm.into()).await?;
        if let Some(cache) = &self.artifacts
            && let Err(e) = cache.store(digest, &artifact)
        {
            tracing::warn!(%digest, "cannot cache the compiled artifact: {e}");
        }
        // SAFETY: `artifact` comes from the compiler seam, whose contract is to return what
        // `Engine::precompile_component` returns for a compatible engine; the in-process
        // compiler calls exactly that on this engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.engine, &artifact) };
        component
            .map_err(|e| LoadError::Compile(format!("the compiled artifact is unusable: {e:#}")))
    }

    fn link(
        &self,
        digest: ComponentDigest,
        component: &Component,
    ) -> Result<LoadedSkill, LoadError> {
        let imports = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::UnsupportedImport(format!("{e:#}")))?;
        let pre = SkillPre::new(pre).map_err(|e| LoadError::NotASkill(format!("{e:#}")))?;
        Ok(LoadedSkill {
            digest,
            pre,
            imports,
        })
    }
}
