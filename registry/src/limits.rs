//! Bounds on what a package may contain, in one place.

/// Limits applied while reading a package. Everything is checked against actual bytes, never
/// only against sizes an archive declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageLimits {
    /// Largest package (the ZIP file), in bytes.
    pub max_package_bytes: u64,
    /// Most entries in the archive.
    pub max_entries: usize,
    /// Largest `skill.wasm`, uncompressed, in bytes.
    pub max_wasm_bytes: u64,
    /// Largest other file (manifest, README, icon, schema), uncompressed, in bytes.
    pub max_file_bytes: u64,
    /// Largest total of all uncompressed entries, in bytes.
    pub max_total_bytes: u64,
    /// Highest uncompressed-to-compressed ratio of an entry larger than
    /// `ratio_threshold_bytes`: beyond it the entry is treated as a zip bomb.
    pub max_compression_ratio: u64,
    /// Entries smaller than this are not ratio-checked (tiny files compress absurdly well).
    pub ratio_threshold_bytes: u64,
}

impl Default for PackageLimits {
    /// 64 MiB packages with up to 48 MiB of wasm (an interpreter-based Python or JavaScript
    /// skill is 12–20 MiB), 1 MiB per other file, 64 entries, ratio 100.
    fn default() -> Self {
        Self {
            max_package_bytes: 64 << 20,
            max_entries: 64,
            max_wasm_bytes: 48 << 20,
            max_file_bytes: 1 << 20,
            max_total_bytes: 64 << 20,
            max_compression_ratio: 100,
            ratio_threshold_bytes: 1 << 20,
        }
    }
}
