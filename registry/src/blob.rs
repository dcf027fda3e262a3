//! Content-addressed blob storage for packages and components.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};
use thiserror::Error;
use tokio::io::{AsyncRead, ReadBuf};

use omniforge_types::Sha256Digest;

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
    /// Stores the content of the file at `path`, streamed (never read whole into memory),
    /// and returns its digest.
    async fn put_file(&self, path: &Path) -> Result<Sha256Digest, BlobError>;
    /// The blob with this digest opened for streaming, if stored. Its bytes are checked
    /// against the digest as they are read: a mismatch ends the stream with an error.
    async fn open(&self, digest: &Sha256Digest) -> Result<Option<BlobReader>, BlobError>;
    /// The bytes with this digest, if stored; verified against the digest.
    async fn get(&self, digest: &Sha256Digest) -> Result<Option<Vec<u8>>, BlobError>;
    /// Whether a blob with this digest is stored.
    async fn contains(&self, digest: &Sha256Digest) -> Result<bool, BlobError>;
    /// Removes a blob; removing a missing blob succeeds.
    async fn delete(&self, digest: &Sha256Digest) -> Result<(), BlobError>;
}

/// A stored blob being read: its size and its bytes.
pub struct BlobReader {
    /// Size in bytes.
    pub size: u64,
    /// The bytes, verified against the digest as they are read.
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Hashes what passes through and fails at the end if it is not the expected content.
struct Verifying<R> {
    inner: R,
    hasher: Sha256,
    expected: Sha256Digest,
}

impl<R: AsyncRead + Unpin> AsyncRead for Verifying<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if new.is_empty() {
                    let actual: [u8; 32] = std::mem::take(&mut this.hasher).finalize().into();
                    if &actual != this.expected.as_bytes() {
                        return Poll::Ready(Err(io::Error::other(BlobError::Corrupt(
                            this.expected,
                        ))));
                    }
                } else {
                    this.hasher.update(new);
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// `inner`'s bytes, checked against `expected` as they are read: a stream that ends with
/// other content ends with a [`BlobError::Corrupt`] error. Every [`BlobStore`] hands out
/// its blobs through this.
pub fn verifying_reader(
    inner: impl AsyncRead + Send + Unpin + 'static,
    expected: Sha256Digest,
) -> Pin<Box<dyn AsyncRead + Send>> {
    Box::pin(Verifying {
        inner,
        hasher: Sha256::new(),
        expected,
    })
}

/// The SHA-256 of a file, read through a small buffer (blocking).
pub fn hash_file(path: &Path) -> io::Result<Sha256Digest> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Sha256Digest::from_bytes(hasher.finalize().into()))
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

    /// Removes the temporary files a crashed writer left in `<root>/tmp`; returns how many.
    /// Only for a process that owns the store and has not started writing (a server at
    /// start): every file there is then an orphan.
    pub fn sweep_temporary(&self) -> io::Result<usize> {
        sweep_dir(&self.root.join("tmp"))
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

    fn put_file_blocking(&self, source: &Path) -> io::Result<Sha256Digest> {
        let digest = hash_file(source)?;
        let path = self.path(&digest);
        if path.exists() {
            return Ok(digest);
        }
        std::fs::create_dir_all(path.parent().expect("blob paths have a parent"))?;
        let mut temp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        io::copy(&mut std::fs::File::open(source)?, temp.as_file_mut())?;
        temp.as_file().sync_all()?;
        temp.persist(&path).map_err(|e| e.error)?;
        Ok(digest)
    }
}

/// Removes every file in `dir` (not its subdirectories); returns how many.
pub fn sweep_dir(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
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

    async fn put_file(&self, path: &Path) -> Result<Sha256Digest, BlobError> {
        let (store, path) = (self.clone(), path.to_owned());
        blocking(move || Ok(store.put_file_blocking(&path)?)).await
    }

    async fn open(&self, digest: &Sha256Digest) -> Result<Option<BlobReader>, BlobError> {
        let file = match tokio::fs::File::open(self.path(digest)).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata().await?.len();
        Ok(Some(BlobReader {
            size,
            reader: verifying_reader(file, *digest),
        }))
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
    async fn files_are_stored_and_read_back_as_streams_and_corruption_ends_the_stream() {
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path().join("blobs")).unwrap();
        let source = dir.path().join("upload");
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&source, &content).unwrap();
        let digest = store.put_file(&source).await.unwrap();
        assert_eq!(digest, Sha256Digest::of(&content));
        assert_eq!(store.put(&content).await.unwrap(), digest);
        let mut blob = store.open(&digest).await.unwrap().unwrap();
        assert_eq!(blob.size, content.len() as u64);
        let mut read = Vec::new();
        blob.reader.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, content);
        assert!(
            store
                .open(&Sha256Digest::of(b"absent"))
                .await
                .unwrap()
                .is_none()
        );

        std::fs::write(store.path(&digest), b"tampered").unwrap();
        let mut blob = store.open(&digest).await.unwrap().unwrap();
        let mut read = Vec::new();
        assert!(blob.reader.read_to_end(&mut read).await.is_err());
        // Orphaned temporary files are swept.
        std::fs::write(dir.path().join("blobs/tmp/.tmpX"), b"half").unwrap();
        assert_eq!(store.sweep_temporary().unwrap(), 1);
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
