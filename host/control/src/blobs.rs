//! Package and component bytes in S3-compatible object storage, so that several replicas
//! serve what any one of them stored. Objects are named by digest, exactly like the
//! filesystem store's files (`<prefix>sha256/<2 hex>/<64 hex>`), and are immutable: putting
//! the same bytes twice asks the store once whether they are there. Each replica still keeps
//! its own compiled-artifact cache on local disk (the runtime's `cache_dir`).
//!
//! Talks to the store through `object_store`, which signs S3 requests and retries what can
//! be retried; credentials come from the usual `AWS_*` variables or the instance's role.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use omniforge_registry::{BlobError, BlobReader, BlobStore, hash_file, verifying_reader};
use omniforge_types::Sha256Digest;
use tokio::io::AsyncReadExt;

/// Where the S3-compatible store is and how to reach it.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// The bucket (it must exist).
    pub bucket: String,
    /// The region; `AWS_REGION` or `AWS_DEFAULT_REGION` when unset.
    pub region: Option<String>,
    /// A non-AWS endpoint (MinIO, Ceph, R2, a local test server), path-style.
    pub endpoint: Option<String>,
    /// Put before every object name (`omniforge/`, say) to share a bucket.
    pub prefix: String,
}

/// Blobs as objects in an S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

/// Parts of an upload sent at once (each up to `PART_BYTES`): enough to keep a fast link
/// busy without holding more than a few parts of a large package in memory.
const PARTS_IN_FLIGHT: usize = 4;

/// Bytes per multipart part; S3 needs at least 5 MiB for every part but the last.
const PART_BYTES: usize = 8 << 20;

fn storage_error(e: object_store::Error) -> BlobError {
    BlobError::Io(std::io::Error::other(e))
}

impl ObjectBlobStore {
    /// A store over `options`, with credentials from the environment. Nothing is contacted
    /// until the first request.
    pub fn s3(options: &S3Options) -> Result<Self, String> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&options.bucket);
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &options.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = builder
            .build()
            .map_err(|e| format!("blobs.s3: cannot use bucket {}: {e}", options.bucket))?;
        Ok(Self::new(Arc::new(store), &options.prefix))
    }

    /// A store over any `object_store` backend (in-memory for tests).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Self {
            store,
            prefix: prefix.to_owned(),
        }
    }

    fn path(&self, digest: &Sha256Digest) -> ObjectPath {
        let hex = digest.hex();
        ObjectPath::from(format!("{}sha256/{}/{hex}", self.prefix, &hex[..2]))
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn put(&self, bytes: &[u8]) -> Result<Sha256Digest, BlobError> {
        let digest = Sha256Digest::of(bytes);
        if !self.contains(&digest).await? {
            self.store
                .put(&self.path(&digest), PutPayload::from(bytes.to_vec()))
                .await
                .map_err(storage_error)?;
        }
        Ok(digest)
    }

    async fn put_file(&self, path: &Path) -> Result<Sha256Digest, BlobError> {
        let source = path.to_owned();
        let digest = tokio::task::spawn_blocking(move || hash_file(&source))
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))??;
        if self.contains(&digest).await? {
            return Ok(digest);
        }
        // Streamed in parts: a package never sits in memory whole.
        let upload = self
            .store
            .put_multipart(&self.path(&digest))
            .await
            .map_err(storage_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut file = tokio::fs::File::open(path).await?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(storage_error(e));
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(storage_error)?;
        Ok(digest)
    }

    async fn open(&self, digest: &Sha256Digest) -> Result<Option<BlobReader>, BlobError> {
        let got = match self.store.get(&self.path(digest)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(storage_error(e)),
        };
        let size = got.meta.size;
        let stream = got.into_stream().map_err(std::io::Error::other);
        let reader = tokio_util::io::StreamReader::new(stream);
        Ok(Some(BlobReader {
            size,
            reader: verifying_reader(reader, *digest),
        }))
    }

    async fn get(&self, digest: &Sha256Digest) -> Result<Option<Vec<u8>>, BlobError> {
        let got = match self.store.get(&self.path(digest)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(storage_error(e)),
        };
        let bytes = got.bytes().await.map_err(storage_error)?;
        if Sha256Digest::of(&bytes) != *digest {
            return Err(BlobError::Corrupt(*digest));
        }
        Ok(Some(bytes.to_vec()))
    }

    async fn contains(&self, digest: &Sha256Digest) -> Result<bool, BlobError> {
        match self.store.head(&self.path(digest)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage_error(e)),
        }
    }

    async fn delete(&self, digest: &Sha256Digest) -> Result<(), BlobError> {
        match self.store.delete(&self.path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn blobs_round_trip_through_an_object_store_and_corruption_is_caught() {
        let memory = Arc::new(InMemory::new());
        let store = ObjectBlobStore::new(memory.clone(), "omniforge/");
        let digest = store.put(b"hello").await.unwrap();
        assert_eq!(store.put(b"hello").await.unwrap(), digest);
        assert_eq!(store.get(&digest).await.unwrap().unwrap(), b"hello");
        assert!(store.contains(&digest).await.unwrap());
        let hex = digest.hex();
        let name = ObjectPath::from(format!("omniforge/sha256/{}/{hex}", &hex[..2]));
        assert!(
            memory.head(&name).await.is_ok(),
            "named by digest under the prefix"
        );

        // A file larger than one part, streamed in and out.
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("package");
        let content: Vec<u8> = (0..(PART_BYTES + 12_345) as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&source, &content).unwrap();
        let big = store.put_file(&source).await.unwrap();
        assert_eq!(big, Sha256Digest::of(&content));
        let mut blob = store.open(&big).await.unwrap().unwrap();
        assert_eq!(blob.size, content.len() as u64);
        let mut read = Vec::new();
        blob.reader.read_to_end(&mut read).await.unwrap();
        assert!(read == content);

        // Someone rewrites the object: readers get an error, never the other bytes.
        memory
            .put(&name, PutPayload::from(b"tampered".to_vec()))
            .await
            .unwrap();
        assert!(matches!(
            store.get(&digest).await,
            Err(BlobError::Corrupt(_))
        ));
        let mut blob = store.open(&digest).await.unwrap().unwrap();
        assert!(blob.reader.read_to_end(&mut Vec::new()).await.is_err());

        store.delete(&digest).await.unwrap();
        store.delete(&digest).await.unwrap();
        assert!(store.get(&digest).await.unwrap().is_none());
        assert!(store.open(&digest).await.unwrap().is_none());
        assert!(!store.contains(&digest).await.unwrap());
    }
}
