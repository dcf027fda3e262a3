//! `/api/v1/skills/{namespace}/{name}/versions`: read versions, download packages, yank and
//! unyank. Visibility as for skills: another tenant's private skill is 404, changing another
//! tenant's public one 403.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use omniforge_control::Change;
use omniforge_store::{Skill, SkillVersion};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::skills::{owned, visible};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson};
use crate::middleware::RequestId;

/// A version in listings.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    /// The semver version.
    pub version: String,
    /// Skipped by requirements, still fetchable by exact version.
    pub yanked: bool,
    /// SHA-256 of the package.
    pub package_sha256: String,
    /// SHA-256 of the runnable component.
    pub component_sha256: String,
    /// Package size in bytes.
    pub size_bytes: i64,
    /// Who published it (shown to the publishing tenant only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_by: Option<String>,
    /// The signing key id, if the package was signed.
    pub signature_key_id: Option<String>,
    /// Whether its component is compiled on this server: until it is, an invocation may
    /// answer 503 `skill-compiling` (compiling starts at publish, or at the first invocation
    /// on a server that has not compiled it).
    pub compiled: bool,
    /// Unix ms.
    pub created_at_ms: i64,
}

impl VersionView {
    /// The view of `v`; `owned` when the caller's tenant published it.
    pub(crate) fn new(app: &AppState, v: &SkillVersion, owned: bool) -> Self {
        let compiled = app.invocations.catalog().is_compiled(&v.component_sha256);
        Self {
            compiled,
            version: v.version.to_string(),
            yanked: v.yanked,
            package_sha256: v.package_sha256.hex(),
            component_sha256: v.component_sha256.hex(),
            size_bytes: v.size_bytes,
            published_by: owned.then(|| v.published_by.clone()),
            signature_key_id: v.signature_key_id.clone(),
            created_at_ms: v.created_at_ms,
        }
    }
}

/// One version in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionDetail {
    /// `namespace/name`.
    pub skill: String,
    /// The version's summary.
    #[serde(flatten)]
    pub version: VersionView,
    /// The manifest, as JSON.
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
    /// The permissions it asks for (the manifest's `[permissions]`).
    #[schema(value_type = Object)]
    pub permissions: serde_json::Value,
    /// The input JSON Schema.
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<serde_json::Value>,
}

/// Every version of a skill, newest first.
#[utoipa::path(get, path = "/api/v1/skills/{namespace}/{name}/versions", tag = "skills",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "The versions", body = [VersionView]),
              (status = 404, description = "No such skill visible to the caller", body = crate::error::Problem)))]
pub async fn versions(
    State(app): State<AppState>,
    principal: Principal,
    Path((ns, name)): Path<(String, String)>,
) -> Result<ApiJson<Vec<VersionView>>, ApiError> {
    let skill = visible(&app, &principal, &ns, &name).await?;
    let versions = app.db.tenant(&principal.tenant).versions(&skill.id).await?;
    let owned = skill.tenant_id == principal.tenant;
    Ok(ApiJson(
        versions
            .iter()
            .map(|v| VersionView::new(&app, v, owned))
            .collect(),
    ))
}

async fn find_version(
    app: &AppState,
    principal: &Principal,
    ns: &str,
    name: &str,
    version: &str,
) -> Result<(Skill, SkillVersion), ApiError> {
    let skill = visible(app, principal, ns, name).await?;
    let found = app
        .db
        .tenant(&principal.tenant)
        .version(&skill.id, version)
        .await?
        .ok_or_else(|| ApiError::not_found("version"))?;
    Ok((skill, found))
}

/// One version: manifest, digests, permissions, size.
#[utoipa::path(get, path = "/api/v1/skills/{namespace}/{name}/versions/{version}", tag = "skills",
    params(("namespace" = String, Path), ("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "The version", body = VersionDetail),
              (status = 404, description = "No such skill or version visible to the caller", body = crate::error::Problem)))]
pub async fn version(
    State(app): State<AppState>,
    principal: Principal,
    Path((ns, name, version)): Path<(String, String, String)>,
) -> Result<ApiJson<VersionDetail>, ApiError> {
    let (skill, found) = find_version(&app, &principal, &ns, &name, &version).await?;
    let manifest: serde_json::Value =
        serde_json::from_str(&found.manifest).map_err(ApiError::internal)?;
    let input_schema = found
        .input_schema
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(ApiError::internal)?;
    Ok(ApiJson(VersionDetail {
        skill: skill.full_name.to_string(),
        version: VersionView::new(&app, &found, skill.tenant_id == principal.tenant),
        permissions: manifest.get("permissions").cloned().unwrap_or_default(),
        manifest,
        input_schema,
    }))
}

/// The package ZIP of one version.
#[utoipa::path(get, path = "/api/v1/skills/{namespace}/{name}/versions/{version}/download", tag = "skills",
    params(("namespace" = String, Path), ("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "The package", content_type = "application/zip", body = Vec<u8>),
              (status = 404, description = "No such skill or version visible to the caller", body = crate::error::Problem)))]
pub async fn download(
    State(app): State<AppState>,
    principal: Principal,
    Path((ns, name, version)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (skill, found) = find_version(&app, &principal, &ns, &name, &version).await?;
    let digest = found.package_sha256;
    // Streamed from the store: a download never holds the package in memory. A blob that
    // no longer matches its digest ends the stream early, so the client sees a broken
    // download instead of wrong bytes.
    let blob = app
        .blobs
        .open(&digest)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal(format!("package blob {digest} is missing")))?;
    app.db
        .tenant(&principal.tenant)
        .count_download(&skill.id)
        .await?;
    let file = format!("{}-{}-{}.zip", skill.namespace, skill.name, found.version);
    let size = blob.size;
    let mut response =
        Body::from_stream(tokio_util::io::ReaderStream::new(blob.reader)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", found.package_sha256)) {
        headers.insert(header::ETAG, value);
    }
    Ok(response)
}

async fn set_yanked(
    app: AppState,
    principal: Principal,
    request_id: String,
    (ns, name, version): (String, String, String),
    yanked: bool,
) -> Result<ApiJson<VersionView>, ApiError> {
    let skill = owned(&app, &principal, &ns, &name).await?;
    let changed = app
        .db
        .tenant(&principal.tenant)
        .set_yanked(&principal.audit(&request_id), &skill.id, &version, yanked)
        .await?
        .ok_or_else(|| ApiError::not_found("version"))?;
    app.invocations.changed(Change::Skill {
        skill: skill.full_name.clone(),
        owner: skill.tenant_id.clone(),
    });
    Ok(ApiJson(VersionView::new(&app, &changed, true)))
}

/// Yanks a version: every requirement (an exact `=1.2.3` too) skips it from now on; it stays
/// readable and downloadable.
#[utoipa::path(post, path = "/api/v1/skills/{namespace}/{name}/versions/{version}/yank", tag = "skills",
    params(("namespace" = String, Path), ("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "Yanked", body = VersionView),
              (status = 403, description = "Another tenant's public skill", body = crate::error::Problem),
              (status = 404, description = "No such skill or version visible to the caller", body = crate::error::Problem)))]
pub async fn yank(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(path): Path<(String, String, String)>,
) -> Result<ApiJson<VersionView>, ApiError> {
    set_yanked(app, principal, request_id, path, true).await
}

/// Undoes a yank.
#[utoipa::path(post, path = "/api/v1/skills/{namespace}/{name}/versions/{version}/unyank", tag = "skills",
    params(("namespace" = String, Path), ("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "Unyanked", body = VersionView),
              (status = 403, description = "Another tenant's public skill", body = crate::error::Problem),
              (status = 404, description = "No such skill or version visible to the caller", body = crate::error::Problem)))]
pub async fn unyank(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(path): Path<(String, String, String)>,
) -> Result<ApiJson<VersionView>, ApiError> {
    set_yanked(app, principal, request_id, path, false).await
}
