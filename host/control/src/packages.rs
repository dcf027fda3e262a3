//! Validating uploaded packages away from the serving memory.
//!
//! An upload is streamed to a temporary file; a [`PackageValidator`] checks it there and
//! writes the runnable component next to it. `omniforge serve` plugs in one that runs
//! `omniforge internal validate` in a child process, so however large a package is, the
//! server holds only its summary; [`InProcessValidator`] (the library default) reads the
//! package on a blocking thread.

use std::path::Path;

use async_trait::async_trait;
use omniforge_registry::{PackageError, PackageFileError, PackageLimits, PackageSummary};
use serde::{Deserialize, Serialize};

/// The limits of packages on a server accepting `max_package_bytes`: the component (and all
/// files together) may be as large as the package itself, so a package at the size limit
/// with an incompressible component is accepted.
pub fn package_limits(max_package_bytes: u64) -> PackageLimits {
    let defaults = PackageLimits::default();
    PackageLimits {
        max_package_bytes,
        max_wasm_bytes: defaults.max_wasm_bytes.max(max_package_bytes),
        max_total_bytes: defaults
            .max_total_bytes
            .max(max_package_bytes.saturating_mul(2)),
        ..defaults
    }
}

/// Why a package was not validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ValidationError {
    /// The package is not acceptable (answered 422, or 413 when `too_large`).
    #[error("{message}")]
    Invalid {
        /// Whether it failed for its size.
        too_large: bool,
        /// The registry's reason.
        message: String,
    },
    /// Validating failed for another reason (a worker crashed, a disk is full): a 500.
    #[error("validating the package failed: {0}")]
    Failed(String),
}

impl From<PackageFileError> for ValidationError {
    fn from(error: PackageFileError) -> Self {
        match error {
            PackageFileError::Package(package) => Self::Invalid {
                too_large: matches!(package, PackageError::TooLarge { .. }),
                message: package.to_string(),
            },
            PackageFileError::Io(io) => Self::Failed(io.to_string()),
        }
    }
}

/// Checks a package file completely and writes its runnable component to `component_out`.
#[async_trait]
pub trait PackageValidator: Send + Sync + 'static {
    /// Validates `package` against `max_package_bytes` (see [`package_limits`]).
    async fn validate(
        &self,
        package: &Path,
        component_out: &Path,
        max_package_bytes: u64,
    ) -> Result<PackageSummary, ValidationError>;
}

/// Validates on a blocking thread of this process (the package is read into memory).
#[derive(Debug, Clone, Copy, Default)]
pub struct InProcessValidator;

#[async_trait]
impl PackageValidator for InProcessValidator {
    async fn validate(
        &self,
        package: &Path,
        component_out: &Path,
        max_package_bytes: u64,
    ) -> Result<PackageSummary, ValidationError> {
        let (package, component_out) = (package.to_owned(), component_out.to_owned());
        tokio::task::spawn_blocking(move || {
            omniforge_registry::validate_package_file(
                &package,
                &component_out,
                &package_limits(max_package_bytes),
            )
            .map_err(ValidationError::from)
        })
        .await
        .map_err(|e| ValidationError::Failed(format!("the validation thread failed: {e}")))?
    }
}
