//! Compiling published components ahead of their invocations: one compile per component
//! however many publishes and invocations ask for it, a few at once (each may take hundreds
//! of MB), and a handle to wait on with a bound, so a request never waits past its own
//! deadline for a compile.
//!
//! Components compile from files (the upload's, or the blob streamed to scratch space) into
//! the runtime's artifact cache, so with a compiler working in a child process neither the
//! component nor its artifact passes through the server's memory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use omniforge_registry::{BlobStore, Sha256Digest};
use omniforge_runtime::{ComponentDigest, Runtime};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, watch};

/// Where a component to compile comes from.
pub enum Source {
    /// A file holding it (removed when the compile is done).
    File(tempfile::TempPath),
    /// The blob store.
    Blob(Sha256Digest),
}

/// How a compile ended: `None` while it runs.
type Done = Option<Result<(), String>>;

/// A compile in progress (or finished), to wait on.
pub struct Compiling(watch::Receiver<Done>);

impl Compiling {
    /// The result, if the compile ends within `wait`; `None` if it is still running.
    pub async fn wait(mut self, wait: Duration) -> Option<Result<(), String>> {
        match tokio::time::timeout(wait, self.0.wait_for(Option::is_some)).await {
            Err(_) => None,
            Ok(Ok(done)) => done.clone(),
            Ok(Err(_)) => Some(Err("the compile task ended without a result".into())),
        }
    }
}

/// The compiles of this server.
pub struct Compiles {
    runtime: Arc<Runtime>,
    blobs: Arc<dyn BlobStore>,
    scratch: PathBuf,
    slots: Semaphore,
    running: Mutex<HashMap<ComponentDigest, watch::Receiver<Done>>>,
}

impl Compiles {
    /// Compiles for `runtime`, reading blobs from `blobs` through files in `scratch`, at most
    /// `at_once` at a time.
    pub fn new(
        runtime: Arc<Runtime>,
        blobs: Arc<dyn BlobStore>,
        scratch: PathBuf,
        at_once: usize,
    ) -> Self {
        Self {
            runtime,
            blobs,
            scratch,
            slots: Semaphore::new(at_once.max(1)),
            running: Mutex::default(),
        }
    }

    fn running(&self) -> MutexGuard<'_, HashMap<ComponentDigest, watch::Receiver<Done>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `digest` is being compiled now.
    pub fn is_running(&self, digest: &ComponentDigest) -> bool {
        self.running().contains_key(digest)
    }

    /// Compiles `digest` from `source` unless that is already under way; either way, a
    /// handle on the compile. The compile goes on when nobody waits any more.
    pub fn start(self: &Arc<Self>, digest: ComponentDigest, source: Source) -> Compiling {
        let mut running = self.running();
        if let Some(done) = running.get(&digest) {
            return Compiling(done.clone());
        }
        let (report, done) = watch::channel(None);
        running.insert(digest, done.clone());
        drop(running);
        let compiles = Arc::clone(self);
        tokio::spawn(async move {
            let result = compiles.compile(digest, source).await;
            if let Err(e) = &result {
                tracing::warn!(%digest, "compiling a published component failed: {e}");
            }
            // Reported before it is forgotten: whoever asks in between gets this result.
            let _ = report.send(Some(result));
            compiles.running().remove(&digest);
        });
        Compiling(done)
    }

    async fn compile(&self, digest: ComponentDigest, source: Source) -> Result<(), String> {
        let _slot = self.slots.acquire().await.map_err(|e| e.to_string())?;
        if self.runtime.is_compiled(&digest) {
            return Ok(());
        }
        let file = match source {
            Source::File(path) => path,
            Source::Blob(blob) => self.fetch(&blob).await?,
        };
        self.runtime
            .precompile_file(digest, &file)
            .await
            .map_err(|e| e.to_string())
    }

    /// Streams a blob into a scratch file.
    async fn fetch(&self, blob: &Sha256Digest) -> Result<tempfile::TempPath, String> {
        let mut stored = self
            .blobs
            .open(blob)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("component blob {blob} is missing"))?;
        let temp = tempfile::NamedTempFile::new_in(&self.scratch)
            .map_err(|e| format!("scratch space: {e}"))?
            .into_temp_path();
        let mut file = tokio::fs::File::create(&temp)
            .await
            .map_err(|e| format!("scratch space: {e}"))?;
        tokio::io::copy(&mut stored.reader, &mut file)
            .await
            .map_err(|e| format!("reading component blob {blob}: {e}"))?;
        file.flush().await.map_err(|e| e.to_string())?;
        Ok(temp)
    }
}
