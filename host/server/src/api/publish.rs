//! `POST /api/v1/skills`: publishing a package (a ZIP, a multipart form, or a bare component
//! with its manifest), streamed under the size limit, validated, checked and stored.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use http_body_util::BodyExt;
use omniforge_registry::{
    COMPONENT_FILE, MANIFEST_FILE, Manifest, PackageError, PackageLimits, README_FILE,
    ValidatedPackage, validate_package, write_archive,
};
use omniforge_store::{AuditContext, NewVersion, Skill, SkillVersion, Visibility};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::skills::PERMISSION_KINDS;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson};
use crate::middleware::RequestId;

/// The answer to a publish.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    /// `namespace/name`.
    pub name: String,
    /// The version published.
    pub version: String,
    /// SHA-256 of the package.
    pub digest: String,
    /// SHA-256 of the runnable component.
    pub component_sha256: String,
    /// Package size.
    pub size_bytes: i64,
    /// The skill's visibility (new skills start private).
    #[schema(value_type = String, example = "private")]
    pub visibility: Visibility,
}

fn permission_kinds(manifest: &Manifest) -> Vec<String> {
    let p = &manifest.permissions;
    let present = [
        !p.http.is_empty(),
        p.kv,
        !p.secrets.is_empty(),
        p.llm,
        !p.skills.is_empty(),
    ];
    PERMISSION_KINDS
        .iter()
        .zip(present)
        .filter(|(_, on)| *on)
        .map(|(kind, _)| (*kind).to_owned())
        .collect()
}

/// A refused package: 413 for size, 422 for everything else, with the registry's message.
fn package_error(error: PackageError) -> ApiError {
    let detail = error.to_string();
    match error {
        PackageError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "package-too-large", detail)
        }
        _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-package", detail),
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "package-too-large",
        format!("the upload is larger than this server accepts ({limit} bytes)"),
    )
    .with("limit_bytes", limit)
}

/// Reads a request body chunk by chunk, refusing it as soon as it passes `limit`, so an
/// oversize upload is never held whole in memory. An interrupted upload ends here with an
/// error, before anything is stored.
async fn read_limited(body: Body, limit: u64) -> Result<Vec<u8>, ApiError> {
    let mut body = body;
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading the upload: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if (bytes.len() + data.len()) as u64 > limit {
                return Err(too_large(limit));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// The package of a multipart upload: a `package` file, or a `wasm` component with a
/// `manifest` (the TOML text) and optionally a `readme`.
async fn read_multipart(mut form: Multipart, limit: u64) -> Result<Vec<u8>, ApiError> {
    let mut total = 0u64;
    let mut package = None;
    let mut files = std::collections::BTreeMap::new();
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("malformed multipart body: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let mut data = Vec::new();
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| ApiError::bad_request(format!("reading the upload: {e}")))?
        {
            total += chunk.len() as u64;
            if total > limit {
                return Err(too_large(limit));
            }
            data.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "package" => package = Some(data),
            "wasm" => {
                files.insert(COMPONENT_FILE.to_owned(), data);
            }
            "manifest" => {
                files.insert(MANIFEST_FILE.to_owned(), data);
            }
            "readme" => {
                files.insert(README_FILE.to_owned(), data);
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown form field {other:?} (expected package, or wasm + manifest [+ readme])"
                )));
            }
        }
    }
    match package {
        Some(package) if files.is_empty() => Ok(package),
        Some(_) => Err(ApiError::bad_request(
            "send either a package or wasm + manifest, not both",
        )),
        None if files.contains_key(COMPONENT_FILE) && files.contains_key(MANIFEST_FILE) => {
            // A bare component: the package is built here from the fields, so it goes
            // through exactly the same validation as an uploaded ZIP.
            let mut manifest: Manifest = Manifest::parse(
                std::str::from_utf8(&files[MANIFEST_FILE])
                    .map_err(|_| ApiError::invalid("manifest: not UTF-8"))?,
            )
            .map_err(package_error)?;
            manifest.skill.component = COMPONENT_FILE.to_owned();
            files.insert(MANIFEST_FILE.to_owned(), manifest.to_toml().into_bytes());
            Ok(write_archive(&files))
        }
        None => Err(ApiError::bad_request(
            "the form needs a package field, or wasm and manifest fields",
        )),
    }
}

/// Publishes a package (a ZIP as `application/zip`, or `multipart/form-data` with a
/// `package` file or a bare `wasm` component plus its `manifest`).
#[utoipa::path(post, path = "/api/v1/skills", tag = "skills",
    request_body(description = "The package: `application/zip`, or `multipart/form-data` with `package`, or `wasm` + `manifest` (+ `readme`)", content(
        (Vec<u8> = "application/zip"),
        (Vec<u8> = "multipart/form-data"))),
    responses((status = 201, description = "Published", body = Published),
              (status = 403, description = "The namespace belongs to another tenant", body = crate::error::Problem),
              (status = 409, description = "This version is already published", body = crate::error::Problem),
              (status = 413, description = "Larger than `skills.max_package_bytes`", body = crate::error::Problem),
              (status = 415, description = "Neither a ZIP nor a form", body = crate::error::Problem),
              (status = 422, description = "The package is invalid; `detail` says why", body = crate::error::Problem)))]
pub async fn publish(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    request: Request,
) -> Result<(StatusCode, ApiJson<Published>), ApiError> {
    let limit = app.config.skills.max_package_bytes;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|length| length > limit)
    {
        return Err(too_large(limit));
    }
    let bytes = if content_type.starts_with("multipart/form-data") {
        let form = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        read_multipart(form, limit).await?
    } else if content_type.starts_with("application/zip")
        || content_type.starts_with("application/octet-stream")
    {
        read_limited(request.into_body(), limit).await?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the package as application/zip, or multipart/form-data",
        ));
    };
    let limits = PackageLimits {
        max_package_bytes: limit,
        ..PackageLimits::default()
    };
    // Validate and check the version can be published before any byte is stored, so a
    // refused upload (403, 409, 422) leaves nothing behind.
    let package = validate_package(&bytes, &limits).map_err(package_error)?;
    let meta = &package.manifest.package;
    app.db
        .tenant(&principal.tenant)
        .check_publishable(meta.name.namespace(), meta.name.name(), &meta.version)
        .await?;
    app.blobs.put(&bytes).await.map_err(ApiError::internal)?;
    app.blobs
        .put(&package.component)
        .await
        .map_err(ApiError::internal)?;
    let audit = principal.audit(&request_id);
    let (skill, version) = record(&app, &principal, &audit, &package).await?;
    app.catalog.forget(&skill.full_name());
    app.catalog.warm(package.component);
    Ok((
        StatusCode::CREATED,
        ApiJson(Published {
            name: skill.full_name(),
            version: version.version,
            digest: version.package_sha256,
            component_sha256: version.component_sha256,
            size_bytes: version.size_bytes,
            visibility: skill.visibility,
        }),
    ))
}

async fn record(
    app: &AppState,
    principal: &Principal,
    audit: &AuditContext,
    package: &ValidatedPackage,
) -> Result<(Skill, SkillVersion), ApiError> {
    let manifest = &package.manifest;
    let meta = &manifest.package;
    let new = NewVersion {
        namespace: meta.name.namespace().to_owned(),
        name: meta.name.name().to_owned(),
        version: meta.version.clone(),
        description: meta.description.clone(),
        keywords: meta.keywords.clone(),
        categories: meta.categories.clone(),
        permissions: permission_kinds(manifest),
        readme: package.readme.clone().unwrap_or_default(),
        package_sha256: package.package_sha256.hex(),
        component_sha256: package.component_sha256.hex(),
        manifest: serde_json::to_string(manifest).map_err(ApiError::internal)?,
        input_schema: package.input_schema.as_ref().map(|s| s.to_string()),
        size_bytes: package.package_size as i64,
        signature_key_id: package.signature.as_ref().map(|s| s.key_id.clone()),
        published_by: principal.actor(),
    };
    // A publish racing this one past `check_publishable` is refused here (409/403); its
    // blobs stay (content-addressed, shared by identical uploads, unreachable without a row).
    Ok(app.db.tenant(&principal.tenant).publish(audit, new).await?)
}
