//! The package pipeline: validate an uploaded package completely before anything is stored,
//! pack a directory into a package, sign a package.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::archive::{
    COMPONENT_FILE, MANIFEST_FILE, OPTIONAL_FILES, README_FILE, SIGNATURE_FILE, read_archive,
    write_archive,
};
use crate::blob::{BlobError, BlobStore};
use crate::component::{ComponentInfo, prepare_component};
use crate::error::PackageError;
use crate::limits::PackageLimits;
use crate::manifest::{Manifest, SchemaSource};
use crate::signature::{PackageSignature, SignatureError, SignedDigests, SigningKey, VerifyingKey};
use omniforge_types::Sha256Digest;

/// A package that passed every check.
#[derive(Debug, Clone)]
pub struct ValidatedPackage {
    /// The parsed, checked manifest.
    pub manifest: Manifest,
    /// Digest of the package (the ZIP bytes).
    pub package_sha256: Sha256Digest,
    /// Size of the package in bytes.
    pub package_size: u64,
    /// Digest of `omniforge.toml` as stored in the package.
    pub manifest_sha256: Sha256Digest,
    /// Digest of `skill.wasm` as stored in the package.
    pub wasm_sha256: Sha256Digest,
    /// What a signature of this package must cover.
    pub signed_digests: SignedDigests,
    /// The runnable component: `skill.wasm` itself, or the component adapted from a wasip1
    /// core module.
    pub component: Vec<u8>,
    /// Digest of [`Self::component`].
    pub component_sha256: Sha256Digest,
    /// What the component imports and exports.
    pub component_info: ComponentInfo,
    /// The README, if any.
    pub readme: Option<String>,
    /// The input JSON Schema, if the manifest gives one.
    pub input_schema: Option<serde_json::Value>,
    /// The output JSON Schema, if the manifest gives one.
    pub output_schema: Option<serde_json::Value>,
    /// The signature in `omniforge.sig`, not yet verified against any key.
    pub signature: Option<PackageSignature>,
    /// Every file in the package with its size.
    pub files: BTreeMap<String, u64>,
}

impl ValidatedPackage {
    /// Checks that the package is signed by `key` and its files are the signed ones.
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), SignatureError> {
        let signature = self.signature.as_ref().ok_or(SignatureError::Unsigned)?;
        signature.verify(key, &self.signed_digests)
    }
}

/// What a publisher keeps of a validated package: every fact, none of the bytes. Travels as
/// JSON from a validation done in another process ([`validate_package_file`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PackageSummary {
    /// The parsed, checked manifest.
    pub manifest: Manifest,
    /// Digest of the package (the ZIP bytes).
    pub package_sha256: Sha256Digest,
    /// Size of the package in bytes.
    pub package_size: u64,
    /// Digest of the runnable component.
    pub component_sha256: Sha256Digest,
    /// Size of the runnable component in bytes.
    pub component_size: u64,
    /// The README, if any.
    pub readme: Option<String>,
    /// The input JSON Schema, if the manifest gives one.
    pub input_schema: Option<serde_json::Value>,
    /// The output JSON Schema, if the manifest gives one.
    pub output_schema: Option<serde_json::Value>,
    /// The key id of the signature in `omniforge.sig`, not verified against any key.
    pub signature_key_id: Option<String>,
}

impl ValidatedPackage {
    /// The facts of the package, without its bytes.
    pub fn summary(&self) -> PackageSummary {
        PackageSummary {
            manifest: self.manifest.clone(),
            package_sha256: self.package_sha256,
            package_size: self.package_size,
            component_sha256: self.component_sha256,
            component_size: self.component.len() as u64,
            readme: self.readme.clone(),
            input_schema: self.input_schema.clone(),
            output_schema: self.output_schema.clone(),
            signature_key_id: self.signature.as_ref().map(|s| s.key_id.clone()),
        }
    }
}

/// Why validating a package file failed: the package, or reading and writing files.
#[derive(Debug, Error)]
pub enum PackageFileError {
    /// The package is not acceptable.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// [`validate_package`] on a file, writing the runnable component to `component_out`. The
/// package is read whole (a validating child process does this, away from a server's memory);
/// a file larger than the limit is refused before it is read.
pub fn validate_package_file(
    package: &Path,
    component_out: &Path,
    limits: &PackageLimits,
) -> Result<PackageSummary, PackageFileError> {
    let size = std::fs::metadata(package)?.len();
    if size > limits.max_package_bytes {
        return Err(PackageError::TooLarge {
            what: "the package".into(),
            size,
            limit: limits.max_package_bytes,
        }
        .into());
    }
    let bytes = std::fs::read(package)?;
    let validated = validate_package(&bytes, limits)?;
    drop(bytes);
    std::fs::write(component_out, &validated.component)?;
    Ok(validated.summary())
}

/// Checks a package completely (archive, manifest, schemas, component, signature format)
/// without storing anything. Pure and deterministic: the fuzz target calls exactly this.
pub fn validate_package(
    bytes: &[u8],
    limits: &PackageLimits,
) -> Result<ValidatedPackage, PackageError> {
    let files = read_archive(bytes, limits)?;
    let manifest_bytes = files
        .get(MANIFEST_FILE)
        .ok_or(PackageError::MissingManifest)?;
    let manifest_text = std::str::from_utf8(manifest_bytes)
        .map_err(|_| PackageError::ManifestSyntax("omniforge.toml is not UTF-8".into()))?;
    let manifest = Manifest::parse(manifest_text)?;
    let wasm = files
        .get(COMPONENT_FILE)
        .ok_or(PackageError::MissingComponent)?;
    let input_schema = load_schema("input", manifest.skill.input_schema.as_ref(), &files)?;
    let output_schema = load_schema("output", manifest.skill.output_schema.as_ref(), &files)?;
    let signature = files
        .get(SIGNATURE_FILE)
        .map(|sig| PackageSignature::from_json(sig))
        .transpose()
        .map_err(|e| PackageError::InvalidSignatureFile(e.to_string()))?;
    let (component, component_info) = prepare_component(wasm, &manifest)?;
    Ok(ValidatedPackage {
        package_sha256: Sha256Digest::of(bytes),
        package_size: bytes.len() as u64,
        manifest_sha256: Sha256Digest::of(manifest_bytes),
        wasm_sha256: Sha256Digest::of(wasm),
        signed_digests: SignedDigests::of_files(&files),
        component_sha256: Sha256Digest::of(&component),
        component,
        component_info,
        readme: files
            .get(README_FILE)
            .map(|r| String::from_utf8_lossy(r).into_owned()),
        input_schema,
        output_schema,
        signature,
        files: files
            .iter()
            .map(|(name, data)| (name.clone(), data.len() as u64))
            .collect(),
        manifest,
    })
}

fn load_schema(
    which: &'static str,
    source: Option<&SchemaSource>,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Option<serde_json::Value>, PackageError> {
    let invalid = |message: String| PackageError::InvalidSchema { which, message };
    let schema = match source {
        None => return Ok(None),
        Some(SchemaSource::Inline(map)) => serde_json::Value::Object(map.clone()),
        Some(SchemaSource::File(path)) => {
            let bytes = files
                .get(path)
                .ok_or_else(|| PackageError::MissingSchemaFile(path.clone()))?;
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("{path}: {e}")))?
        }
    };
    jsonschema::validator_for(&schema).map_err(|e| invalid(e.to_string()))?;
    Ok(Some(schema))
}

/// Why [`ingest`] refused or failed.
#[derive(Debug, Error)]
pub enum IngestError {
    /// The package is not acceptable; nothing was stored.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// Storing a valid package failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// Validates a package and, only if it passes, stores the package and its runnable component
/// in `store`.
pub async fn ingest(
    store: &dyn BlobStore,
    bytes: &[u8],
    limits: &PackageLimits,
) -> Result<ValidatedPackage, IngestError> {
    let package = validate_package(bytes, limits)?;
    store.put(bytes).await?;
    store.put(&package.component).await?;
    Ok(package)
}

/// Why packing a directory failed.
#[derive(Debug, Error)]
pub enum PackError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The files do not make a valid package.
    #[error(transparent)]
    Package(#[from] PackageError),
}

/// Builds a package from a directory holding `omniforge.toml` and the built component it
/// names in `[skill] component` (or `component`, when given, e.g. by a CI pipeline that
/// builds elsewhere), plus `README.md`, `LICENSE*`, `icon.*` and the schema files the
/// manifest names when present. The result is validated before it is returned.
pub fn pack_dir(
    dir: &Path,
    component: Option<&Path>,
    limits: &PackageLimits,
) -> Result<(Vec<u8>, ValidatedPackage), PackError> {
    let read =
        |path: PathBuf| std::fs::read(&path).map_err(|source| PackError::Read { path, source });
    let manifest_bytes = read(dir.join(MANIFEST_FILE))?;
    let manifest_text = std::str::from_utf8(&manifest_bytes)
        .map_err(|_| PackageError::ManifestSyntax("omniforge.toml is not UTF-8".into()))?;
    let manifest = Manifest::parse(manifest_text)?;
    let mut files = BTreeMap::new();
    let component = component.map_or_else(|| dir.join(&manifest.skill.component), Path::to_owned);
    files.insert(COMPONENT_FILE.to_owned(), read(component)?);
    for source in [&manifest.skill.input_schema, &manifest.skill.output_schema]
        .into_iter()
        .flatten()
    {
        if let SchemaSource::File(path) = source {
            files.insert(path.clone(), read(dir.join(path))?);
        }
    }
    for optional in OPTIONAL_FILES {
        let path = dir.join(optional);
        if path.is_file() {
            files.insert((*optional).to_owned(), read(path)?);
        }
    }
    files.insert(MANIFEST_FILE.to_owned(), manifest_bytes);
    let bytes = write_archive(&files);
    let package = validate_package(&bytes, limits)?;
    Ok((bytes, package))
}

/// Adds (or replaces) `omniforge.sig` in a package, signing its manifest and component.
pub fn sign_package(
    bytes: &[u8],
    key: &SigningKey,
    limits: &PackageLimits,
) -> Result<Vec<u8>, PackageError> {
    validate_package(bytes, limits)?;
    let mut files = read_archive(bytes, limits)?;
    let signature = PackageSignature::sign(key, &SignedDigests::of_files(&files));
    files.insert(SIGNATURE_FILE.to_owned(), signature.to_json());
    Ok(write_archive(&files))
}
