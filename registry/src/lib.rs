//! # omniforge-registry
//!
//! Skill packages: the `omniforge.toml` manifest, the package ZIP, validation of everything
//! in it (archive defenses, manifest, schemas, the component's world and its imports against
//! the declared permissions, wasip1 adaptation), ed25519 signatures, semver resolution and
//! content-addressed blob storage. Used by every entry point that handles packages (the CLI,
//! REST uploads, the marketplace); it needs no server and no wasm engine.
//!
//! ```no_run
//! use omniforge_registry::{FsBlobStore, PackageLimits, ingest};
//!
//! # async fn demo(upload: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! let store = FsBlobStore::open("./omniforge-data/blobs")?;
//! let package = ingest(&store, &upload, &PackageLimits::default()).await?;
//! println!(
//!     "{} {} ({})",
//!     package.manifest.package.name, package.manifest.package.version, package.package_sha256
//! );
//! # Ok(()) }
//! ```

mod archive;
mod blob;
mod component;
mod error;
mod limits;
mod manifest;
mod package;
mod permission;
mod resolve;
mod signature;

pub use archive::{
    ArchiveEntry, COMPONENT_FILE, MANIFEST_FILE, README_FILE, SIGNATURE_FILE, read_archive,
    write_archive, write_archive_to,
};
pub use blob::{
    BlobError, BlobReader, BlobStore, FsBlobStore, hash_file, sweep_dir, verifying_reader,
};
pub use component::{ComponentInfo, prepare_component};
pub use error::PackageError;
pub use limits::PackageLimits;
pub use manifest::{
    Manifest, PackageMetadata, Permissions, RequestedLimits, SchemaSource, SkillSection, World,
};
pub use omniforge_types::{HostPattern, PermissionKind, SecretName, SkillName};
pub use omniforge_types::{InvalidDigest, Sha256Digest};
pub use package::{
    IngestError, PackError, PackageFileError, PackageSummary, ValidatedPackage, ingest, pack_dir,
    sign_package, validate_package, validate_package_file,
};
pub use permission::{Permission, describe as describe_permissions};
pub use resolve::{PublishedVersion, find_exact, parse_requirement, resolve};
pub use signature::{PackageSignature, SignatureError, SignedDigests, SigningKey, VerifyingKey};
