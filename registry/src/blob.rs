//! Content-addressed blob storage for packages and components.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use thiserror::Error;

use crate::digest::Sha256Digest;

/// Why a blob operation failed.
#[derive(Debug, Error)]
pub enum BlobError {
    /// The storage failed (disk, network).
    #[error("blob storage failed: {0}")]
    Io(#[from] io::Error),
    /// A stored blob no longer matches its digest.
    #[error("blob {0} is corrupt: its content no longer matches its digest")]
    Corrupt(Sha256Digest),
}

/// Where package and component bytes live, addressed by their SHA-256. Putting the same
/// bytes twice stores them once. The filesystem implementation is [`FsBlobStore`]; an
/// S3-compatible one serves several replicas.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` and returns their digest.
    async fn put(&self, bytes: &[u8]) -> Result<Sha256Digest, BlobError>;
    /// The bytes with this digest, if stored; verified against the digest.
    async fn get(&self, digest: &Sha256Digest) -> Result<Option<Vec<u8>>, BlobError>;
    /// Whether a blob with this digest is stored.
    async fn contains(&self, digest: &Sha256Digest) -> Result<bool, BlobError>;
    /// Removes a blob; removing a missing blob succeeds.
    async fn delete(&self, digest: &Sha256Digest) -> Result<(), BlobError>;
}

/// Blobs as files under a root directory: `<root>/sha256/<first 2 hex>/<64 hex>`. A blob is
/// written to a temporary file in `<root>/tmp`, synced, and renamed into place, so a crash
/// never leaves a partial blob where a reader could find it.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// A store under `root`, creating its directories.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("sha256"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Self { root })
    }

    fn path(&self, digest: &Sha256Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }

    fn put_blocking(&self, bytes: &[u8]) -> io::Result<Sha256Digest> {
        let digest = Sha256Digest::of(bytes);
        let path = self.path(&digest);
        if path.exists() {
            return Ok(digest);
        }
        std::fs::create_dir_all(path.parent().expect("blob paths have a parent"))?;
        let mut temp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        temp.write_all(bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(&path).map_err(|e| e.error)?;
        Ok(digest)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Io(io::Error::other(format!("blob task failed: {e}"))))?
}

fn read_if_exists(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, bytes: &[u8]) -> Result<Sha256Digest, BlobError> {
        let (store, bytes) = (self.clone(), bytes.to_vec());
        blocking(move || Ok(store.put_blocking(&bytes)?)).await
    }

    async fn get(&self, digest: &Sha256Digest) -> Result<Option<Vec<u8>>, BlobError> {
        let (path, digest) = (self.path(digest), *digest);
        blocking(move || match read_if_exists(&path)? {
            Some(bytes) if Sha256Digest::of(&bytes) != digest => Err(BlobError::Corrupt(digest)),
            other => Ok(other),
        })
        .await
    }

    async fn contains(&self, digest: &Sha256Digest) -> Result<bool, BlobError> {
        let path = self.path(digest);
        blocking(move || Ok(path.try_exists()?)).await
    }

    async fn delete(&self, digest: &Sha256Digest) -> Result<(), BlobError> {
        let path = self.path(digest);
        blocking(move || match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_round_trip_and_are_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let digest = store.put(b"hello").await.unwrap();
        assert_eq!(store.put(b"hello").await.unwrap(), digest);
        assert_eq!(
            store.get(&digest).await.unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        assert!(store.contains(&digest).await.unwrap());
        store.delete(&digest).await.unwrap();
        store.delete(&digest).await.unwrap();
        assert_eq!(store.get(&digest).await.unwrap(), None);
        assert!(
            std::fs::read_dir(dir.path().join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_corrupted_blob_is_reported_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let digest = store.put(b"original").await.unwrap();
        std::fs::write(store.path(&digest), b"tampered").unwrap();
        assert!(matches!(
            store.get(&digest).await,
            Err(BlobError::Corrupt(_))
        ));
    }
}
