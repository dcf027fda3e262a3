//! `POST /api/v1/skills`: publishing a package (a ZIP, a multipart form, or a bare component
//! with its manifest).
//!
//! The upload is streamed to a temporary file under the size limit ([`crate::api::upload`]),
//! validated there by the package validator (a child process under `omniforge serve`),
//! stored from the files, and compiled before the answer when that takes less than the
//! compile wait. The server holds chunks and the package's summary, never the package; a
//! few publishes run at once, more are answered 429.

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use omniforge_control::Change;
use omniforge_registry::PackageSummary;
use omniforge_store::{AuditContext, NewVersion, Skill, SkillVersion, Visibility};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::upload::{save_body, save_multipart, temp_file, too_large};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson};
use crate::middleware::RequestId;
use omniforge_control::compiles::Source;
use omniforge_control::packages::ValidationError;

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
    /// Whether the component is compiled on this server already. When not (a large
    /// component on a busy machine), compiling goes on: the version's `compiled` says when
    /// it is done, and an invocation meanwhile answers 503 `skill-compiling` with
    /// `Retry-After`.
    pub compiled: bool,
}

/// A publish as a form: a `package` (ZIP), or a bare `wasm` component with its `manifest`
/// (TOML) and optionally a `readme`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // only its schema is used: the form is read field by field, streamed
pub struct PublishForm {
    /// The package, a ZIP.
    #[schema(value_type = Option<String>, format = Binary)]
    package: Option<Vec<u8>>,
    /// A bare component (with `manifest`).
    #[schema(value_type = Option<String>, format = Binary)]
    wasm: Option<Vec<u8>>,
    /// The component's `omniforge.toml`.
    manifest: Option<String>,
    /// Its README (Markdown).
    readme: Option<String>,
}

/// A refused package: 413 for size, 422 for everything else, with the registry's message.
fn validation_error(error: ValidationError) -> ApiError {
    match error {
        ValidationError::Invalid {
            too_large: true,
            message,
        } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "package-too-large", message),
        ValidationError::Invalid { message, .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-package", message)
        }
        ValidationError::Failed(cause) => ApiError::internal(cause),
    }
}

/// Publishes a package (a ZIP as `application/zip`, or `multipart/form-data` with a
/// `package` file or a bare `wasm` component plus its `manifest`).
#[utoipa::path(post, path = "/api/v1/skills", tag = "skills",
    request_body(description = "The package: `application/zip`, or `multipart/form-data` with `package`, or `wasm` + `manifest` (+ `readme`)", content(
        (Vec<u8> = "application/zip"),
        (PublishForm = "multipart/form-data"))),
    responses((status = 201, description = "Published", body = Published),
              (status = 403, description = "The namespace belongs to another tenant", body = crate::error::Problem),
              (status = 429, description = "`publishes`: as many publishes run at once as the server allows", body = crate::error::Problem),
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
    let Ok(_slot) = std::sync::Arc::clone(&app.publishes).try_acquire_owned() else {
        return Err(ApiError::too_many_requests(
            "the server is validating as many packages as it may at once; try again shortly",
            "publishes",
            std::time::Duration::from_secs(2),
        ));
    };
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
    let package = temp_file(&app.uploads)?;
    if content_type.starts_with("multipart/form-data") {
        let form = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        save_multipart(form, limit, &app.uploads, &package).await?;
    } else if content_type.starts_with("application/zip")
        || content_type.starts_with("application/octet-stream")
    {
        save_body(request.into_body(), limit, &package).await?;
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the package as application/zip, or multipart/form-data",
        ));
    }
    // Validate and check the version can be published before any byte is stored, so a
    // refused upload (403, 409, 413, 422) leaves nothing behind.
    let component = temp_file(&app.uploads)?;
    let summary = app
        .validator
        .validate(&package, &component, limit)
        .await
        .map_err(validation_error)?;
    let meta = &summary.manifest.package;
    app.db
        .tenant(&principal.tenant)
        .check_publishable(meta.name.namespace(), meta.name.name(), &meta.version)
        .await?;
    app.blobs
        .put_file(&package)
        .await
        .map_err(ApiError::internal)?;
    app.blobs
        .put_file(&component)
        .await
        .map_err(ApiError::internal)?;
    let audit = principal.audit(&request_id);
    let (skill, version) = record(&app, &principal, &audit, &summary).await?;
    app.invocations.changed(Change::Skill {
        skill: skill.full_name.clone(),
        owner: skill.tenant_id.clone(),
    });
    let digest = summary.component_sha256;
    let compiled = app
        .compiles
        .start(digest, Source::File(component))
        .wait(app.compile_wait)
        .await
        .is_some_and(|done| done.is_ok());
    Ok((
        StatusCode::CREATED,
        ApiJson(Published {
            name: skill.full_name.to_string(),
            version: version.version.to_string(),
            digest: version.package_sha256.hex(),
            component_sha256: version.component_sha256.hex(),
            size_bytes: version.size_bytes,
            visibility: skill.visibility,
            compiled,
        }),
    ))
}

async fn record(
    app: &AppState,
    principal: &Principal,
    audit: &AuditContext,
    package: &PackageSummary,
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
        permissions: manifest.permissions.kinds(),
        readme: package.readme.clone().unwrap_or_default(),
        package_sha256: package.package_sha256,
        component_sha256: package.component_sha256,
        manifest: serde_json::to_string(manifest).map_err(ApiError::internal)?,
        input_schema: package.input_schema.as_ref().map(|s| s.to_string()),
        output_schema: package.output_schema.as_ref().map(|s| s.to_string()),
        size_bytes: package.package_size as i64,
        signature_key_id: package.signature_key_id.clone(),
        published_by: principal.actor(),
    };
    // A publish racing this one past `check_publishable` is refused here (409/403); its
    // blobs stay (content-addressed, shared by identical uploads, unreachable without a row).
    Ok(app.db.tenant(&principal.tenant).publish(audit, new).await?)
}
