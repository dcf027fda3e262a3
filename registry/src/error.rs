//! Why a package was rejected.
//!
//! Error policy: every check has its own variant so callers (the REST API, the CLI) can name
//! the problem precisely; messages say what was found and what is expected, and never echo
//! more than a short excerpt of untrusted input.

use thiserror::Error;

/// A package, manifest or component that is not acceptable.
#[derive(Debug, Error)]
pub enum PackageError {
    /// The package is larger than allowed.
    #[error("{what} is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// What was too large.
        what: String,
        /// Its size (or as much as was read before stopping).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not a readable ZIP archive.
    #[error("not a valid ZIP archive: {0}")]
    NotAZip(String),
    /// Too many entries in the archive.
    #[error("the package has {count} entries; the limit is {limit}")]
    TooManyEntries {
        /// Entries found.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An entry name is absolute, climbs out with `..`, or is otherwise unsafe.
    #[error("unsafe path in package: {0:?}")]
    UnsafePath(String),
    /// The same path appears twice.
    #[error("duplicate entry in package: {0:?}")]
    DuplicateEntry(String),
    /// An entry is a symbolic link.
    #[error("symbolic links are not allowed in packages: {0:?}")]
    Symlink(String),
    /// An entry is encrypted.
    #[error("encrypted entries are not allowed in packages: {0:?}")]
    Encrypted(String),
    /// An entry that has no place in a package.
    #[error(
        "unexpected file in package: {0:?} (allowed: omniforge.toml, skill.wasm, omniforge.sig, \
         README.md, LICENSE, icon.png, icon.svg, and schema files the manifest names)"
    )]
    UnexpectedFile(String),
    /// An entry compresses suspiciously well: a zip bomb.
    #[error("entry {name:?} expands {ratio}× (limit {limit}×): refusing a possible zip bomb")]
    CompressionRatio {
        /// The entry.
        name: String,
        /// Its ratio.
        ratio: u64,
        /// The limit.
        limit: u64,
    },
    /// An entry's data does not match its header (truncated, wrong size or checksum).
    #[error("corrupt entry {name:?}: {reason}")]
    CorruptEntry {
        /// The entry.
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// `omniforge.toml` is missing.
    #[error("the package has no omniforge.toml manifest")]
    MissingManifest,
    /// `skill.wasm` is missing.
    #[error("the package has no skill.wasm component")]
    MissingComponent,
    /// The manifest is not valid TOML or does not match the manifest format.
    #[error("invalid omniforge.toml: {0}")]
    ManifestSyntax(String),
    /// A manifest field has an unacceptable value.
    #[error("invalid omniforge.toml: {field}: {message}")]
    ManifestField {
        /// The field, as `section.key`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A schema file the manifest names is not in the package.
    #[error("the manifest names schema file {0:?}, which is not in the package")]
    MissingSchemaFile(String),
    /// A schema is not valid JSON or not a valid JSON Schema.
    #[error("invalid {which} schema: {message}")]
    InvalidSchema {
        /// `input` or `output`.
        which: &'static str,
        /// Why.
        message: String,
    },
    /// `skill.wasm` is not WebAssembly.
    #[error("skill.wasm is not WebAssembly ({0})")]
    NotWasm(String),
    /// `skill.wasm` is WebAssembly but not a valid component (or module).
    #[error("skill.wasm is not a valid WebAssembly component: {0}")]
    InvalidComponent(String),
    /// A core module could not be turned into a component.
    #[error("cannot adapt the wasip1 core module into a component: {0}")]
    Adapter(String),
    /// The component does not export the skill handler (another world).
    #[error("skill.wasm is not an OmniForge skill: {0}")]
    WrongWorld(String),
    /// The component imports an interface the manifest's permissions do not cover.
    #[error("skill.wasm imports {import}, which needs {needs} in the manifest")]
    UndeclaredImport {
        /// The import.
        import: String,
        /// The permission or world it needs.
        needs: String,
    },
    /// The component imports something OmniForge does not provide.
    #[error("skill.wasm imports {0}, which OmniForge does not provide")]
    UnknownImport(String),
    /// `omniforge.sig` is malformed.
    #[error("invalid omniforge.sig: {0}")]
    InvalidSignatureFile(String),
}
