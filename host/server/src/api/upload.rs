//! Receiving a package upload into a temporary file: a ZIP body, or a multipart form with a
//! `package` file or a bare `wasm` component with its `manifest` (and `readme`). Bytes go to
//! disk chunk by chunk under the size limit, so an upload is never held in memory; an
//! oversize or interrupted one ends here, before anything is stored.

use std::collections::BTreeMap;
use std::path::Path;

use axum::body::Body;
use axum::extract::Multipart;
use axum::extract::multipart::Field;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use omniforge_registry::{
    ArchiveEntry, COMPONENT_FILE, MANIFEST_FILE, Manifest, README_FILE, write_archive_to,
};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;

/// Largest `manifest` or `readme` form field: they are kept in memory.
const MAX_TEXT_FIELD: u64 = 1 << 20;

/// The answer to an upload past `limit` bytes.
pub fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "package-too-large",
        format!("the upload is larger than this server accepts ({limit} bytes)"),
    )
    .with("limit_bytes", limit)
}

/// A new, empty temporary file in `dir`, removed when the returned path is dropped.
pub fn temp_file(dir: &Path) -> Result<TempPath, ApiError> {
    tempfile::NamedTempFile::new_in(dir)
        .map(tempfile::NamedTempFile::into_temp_path)
        .map_err(|e| {
            ApiError::internal(format!("creating an upload file in {}: {e}", dir.display()))
        })
}

async fn create(path: &Path) -> Result<tokio::fs::File, ApiError> {
    tokio::fs::File::create(path)
        .await
        .map_err(|e| ApiError::internal(format!("opening {}: {e}", path.display())))
}

fn write_failed(e: std::io::Error) -> ApiError {
    ApiError::internal(format!("writing an upload: {e}"))
}

/// Counts bytes against the upload's limit, across all of its parts.
struct Budget {
    used: u64,
    limit: u64,
}

impl Budget {
    fn take(&mut self, bytes: usize) -> Result<(), ApiError> {
        self.used += bytes as u64;
        if self.used > self.limit {
            return Err(too_large(self.limit));
        }
        Ok(())
    }
}

/// Streams a request body into `path`.
pub async fn save_body(body: Body, limit: u64, path: &Path) -> Result<(), ApiError> {
    let mut file = create(path).await?;
    let mut budget = Budget { used: 0, limit };
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading the upload: {e}")))?;
        if let Ok(data) = frame.into_data() {
            budget.take(data.len())?;
            file.write_all(&data).await.map_err(write_failed)?;
        }
    }
    file.flush().await.map_err(write_failed)
}

async fn save_field(
    field: &mut Field<'_>,
    budget: &mut Budget,
    path: &Path,
) -> Result<(), ApiError> {
    let mut file = create(path).await?;
    while let Some(chunk) = next_chunk(field).await? {
        budget.take(chunk.len())?;
        file.write_all(&chunk).await.map_err(write_failed)?;
    }
    file.flush().await.map_err(write_failed)
}

async fn read_text_field(field: &mut Field<'_>, budget: &mut Budget) -> Result<Vec<u8>, ApiError> {
    let name = field.name().unwrap_or_default().to_owned();
    let mut data = Vec::new();
    while let Some(chunk) = next_chunk(field).await? {
        budget.take(chunk.len())?;
        data.extend_from_slice(&chunk);
        if data.len() as u64 > MAX_TEXT_FIELD {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "package-too-large",
                format!("the {name} field is larger than {MAX_TEXT_FIELD} bytes"),
            ));
        }
    }
    Ok(data)
}

async fn next_chunk(field: &mut Field<'_>) -> Result<Option<axum::body::Bytes>, ApiError> {
    field
        .chunk()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the upload: {e}")))
}

/// Streams a multipart upload into the package file `package`: its `package` field as is, or
/// a package built from a `wasm` component (spooled to a file in `dir`), its `manifest` and
/// optional `readme`, so a bare component goes through exactly the validation of a ZIP.
pub async fn save_multipart(
    mut form: Multipart,
    limit: u64,
    dir: &Path,
    package: &Path,
) -> Result<(), ApiError> {
    let mut budget = Budget { used: 0, limit };
    let mut have_package = false;
    let mut wasm = None;
    let mut texts = BTreeMap::new();
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("malformed multipart body: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "package" => {
                save_field(&mut field, &mut budget, package).await?;
                have_package = true;
            }
            "wasm" => {
                let path = temp_file(dir)?;
                save_field(&mut field, &mut budget, &path).await?;
                wasm = Some(path);
            }
            "manifest" => {
                let text = read_text_field(&mut field, &mut budget).await?;
                texts.insert(MANIFEST_FILE, text);
            }
            "readme" => {
                let text = read_text_field(&mut field, &mut budget).await?;
                texts.insert(README_FILE, text);
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown form field {other:?} (expected package, or wasm + manifest [+ readme])"
                )));
            }
        }
    }
    match (have_package, wasm) {
        (true, None) if texts.is_empty() => Ok(()),
        (true, _) => Err(ApiError::bad_request(
            "send either a package or wasm + manifest, not both",
        )),
        (false, Some(wasm)) if texts.contains_key(MANIFEST_FILE) => {
            build_package(&texts, &wasm, package).await
        }
        _ => Err(ApiError::bad_request(
            "the form needs a package field, or wasm and manifest fields",
        )),
    }
}

/// Writes the package of a bare component: its manifest (pointing at `skill.wasm`), the
/// component copied from its file, and the README if one came.
async fn build_package(
    texts: &BTreeMap<&'static str, Vec<u8>>,
    wasm: &Path,
    package: &Path,
) -> Result<(), ApiError> {
    let text = std::str::from_utf8(&texts[MANIFEST_FILE])
        .map_err(|_| ApiError::invalid("manifest: not UTF-8"))?;
    let mut manifest = Manifest::parse(text).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-package",
            e.to_string(),
        )
    })?;
    manifest.skill.component = COMPONENT_FILE.to_owned();
    let manifest = manifest.to_toml().into_bytes();
    let readme = texts.get(README_FILE).cloned();
    let (wasm, package) = (wasm.to_owned(), package.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut entries = BTreeMap::new();
        entries.insert(MANIFEST_FILE.to_owned(), ArchiveEntry::Bytes(&manifest));
        entries.insert(COMPONENT_FILE.to_owned(), ArchiveEntry::File(&wasm));
        if let Some(readme) = &readme {
            entries.insert(README_FILE.to_owned(), ArchiveEntry::Bytes(readme));
        }
        write_archive_to(std::fs::File::create(&package)?, &entries)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(write_failed)
}
