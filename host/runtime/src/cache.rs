//! The on-disk compiled-artifact cache, keyed by (component digest, engine compatibility).

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::ComponentDigest;
use crate::error::RuntimeError;

/// Compiled artifacts under `<root>/<engine-compat>/<sha256>.cwasm`. An engine with other
/// settings or another wasmtime version uses another subdirectory, so it never loads an
/// artifact it cannot run. Writes are atomic (temp file + rename): a crash never leaves a
/// partial artifact where a reader could find it.
#[derive(Debug)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub(crate) fn open(root: &Path, engine: &Engine) -> Result<Self, RuntimeError> {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let dir = root.join(format!("{:016x}", hasher.finish()));
        fs::create_dir_all(&dir).map_err(|source| RuntimeError::CacheDir {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    fn path(&self, digest: &ComponentDigest) -> PathBuf {
        self.dir
            .join(format!("{}.cwasm", hex::encode(digest.as_bytes())))
    }

    /// The cached artifact of `digest`, if there is a usable one.
    pub(crate) fn load(&self, engine: &Engine, digest: &ComponentDigest) -> Option<Component> {
        let path = self.path(digest);
        if !path.exists() {
            return None;
        }
        // SAFETY: `deserialize_file` trusts the file to be an artifact wasmtime produced.
        // Files in this directory are only written by `store` below, with the output of
        // `Engine::precompile_component` for an engine with the same compatibility hash, and
        // they are renamed into place only once complete. The directory belongs to the
        // operator; anyone who can write there can already replace the binary.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "discarding unusable cached artifact: {e:#}");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Whether an artifact of `digest` is stored.
    pub(crate) fn contains(&self, digest: &ComponentDigest) -> bool {
        self.path(digest).exists()
    }

    /// An empty temporary file in the cache's directory, for a compiler to write an artifact
    /// into before [`ArtifactCache::adopt`] moves it into place.
    pub(crate) fn temporary(&self) -> io::Result<tempfile::NamedTempFile> {
        tempfile::NamedTempFile::new_in(&self.dir)
    }

    /// Moves a complete artifact written into a [`ArtifactCache::temporary`] file into place.
    pub(crate) fn adopt(
        &self,
        digest: &ComponentDigest,
        artifact: tempfile::NamedTempFile,
    ) -> io::Result<()> {
        artifact.as_file().sync_all()?;
        artifact.persist(self.path(digest)).map_err(|e| e.error)?;
        Ok(())
    }

    /// Stores the artifact of `digest`.
    pub(crate) fn store(&self, digest: &ComponentDigest, artifact: &[u8]) -> io::Result<()> {
        let mut temp = tempfile::NamedTempFile::new_in(&self.dir)?;
        temp.write_all(artifact)?;
        temp.as_file().sync_all()?;
        temp.persist(self.path(digest)).map_err(|e| e.error)?;
        Ok(())
    }
}
