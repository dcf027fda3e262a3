//! Reading and writing the package ZIP, defensively.
//!
//! Every entry is checked before its data is used: safe relative path, not a link, not
//! encrypted, an expected file, under its size limit, not a zip bomb, and its data exactly as
//! long as its header says. Limits come from [`PackageLimits`].

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};

use zip::ZipArchive;
use zip::write::SimpleFileOptions;

use crate::error::PackageError;
use crate::limits::PackageLimits;
use crate::manifest::check_relative_path;

/// The manifest's name inside a package.
pub const MANIFEST_FILE: &str = "omniforge.toml";
/// The component's name inside a package.
pub const COMPONENT_FILE: &str = "skill.wasm";
/// The signature's name inside a package.
pub const SIGNATURE_FILE: &str = "omniforge.sig";
/// The optional README's name inside a package.
pub const README_FILE: &str = "README.md";

/// Files a package may contain for people (the marketplace shows them); `pack` includes
/// those it finds next to the manifest.
pub(crate) const OPTIONAL_FILES: &[&str] = &[
    README_FILE,
    "LICENSE",
    "LICENSE.md",
    "LICENSE.txt",
    "icon.png",
    "icon.svg",
];

fn is_allowed(name: &str) -> bool {
    [MANIFEST_FILE, COMPONENT_FILE, SIGNATURE_FILE].contains(&name)
        || OPTIONAL_FILES.contains(&name)
        || name
            .strip_prefix("schemas/")
            .is_some_and(|rest| rest.ends_with(".json") && !rest.contains('/'))
}

/// Reads the entries of a package archive into memory, by path.
pub fn read_archive(
    bytes: &[u8],
    limits: &PackageLimits,
) -> Result<BTreeMap<String, Vec<u8>>, PackageError> {
    if bytes.len() as u64 > limits.max_package_bytes {
        return Err(PackageError::TooLarge {
            what: "the package".into(),
            size: bytes.len() as u64,
            limit: limits.max_package_bytes,
        });
    }
    check_declared_entries(bytes, limits)?;
    let mut archive =
        ZipArchive::new(Cursor::new(bytes)).map_err(|e| PackageError::NotAZip(e.to_string()))?;
    // The ZIP reader keeps one entry per name; another tool might pick the other one.
    if archive.has_duplicate_names() {
        return Err(PackageError::DuplicateEntry(
            "two entries share a name".into(),
        ));
    }
    if archive.len() > limits.max_entries {
        return Err(PackageError::TooManyEntries {
            count: archive.len(),
            limit: limits.max_entries,
        });
    }
    let mut files = BTreeMap::new();
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| PackageError::NotAZip(e.to_string()))?;
        let name = entry
            .name()
            .map_err(|e| {
                PackageError::NotAZip(format!("entry {index} has an unreadable name: {e}"))
            })?
            .into_owned();
        let shown: String = name.chars().take(100).collect();
        check_relative_path("entry", name.trim_end_matches('/'))
            .map_err(|_| PackageError::UnsafePath(shown.clone()))?;
        if entry.is_symlink() {
            return Err(PackageError::Symlink(shown));
        }
        if entry.encrypted() {
            return Err(PackageError::Encrypted(shown));
        }
        if entry.is_dir() {
            continue;
        }
        if !is_allowed(&name) {
            return Err(PackageError::UnexpectedFile(shown));
        }
        let limit = if name == COMPONENT_FILE {
            limits.max_wasm_bytes
        } else {
            limits.max_file_bytes
        };
        let declared = entry.size();
        if declared > limit {
            return Err(PackageError::TooLarge {
                what: shown,
                size: declared,
                limit,
            });
        }
        let ratio = declared / entry.compressed_size().max(1);
        if declared > limits.ratio_threshold_bytes && ratio > limits.max_compression_ratio {
            return Err(PackageError::CompressionRatio {
                name: shown,
                ratio,
                limit: limits.max_compression_ratio,
            });
        }
        // Never trust the header: read at most one byte past the limit.
        let mut data = Vec::with_capacity(declared.min(limit) as usize);
        entry
            .by_ref()
            .take(limit + 1)
            .read_to_end(&mut data)
            .map_err(|e| PackageError::CorruptEntry {
                name: shown.clone(),
                reason: e.to_string(),
            })?;
        if data.len() as u64 > limit {
            return Err(PackageError::TooLarge {
                what: shown,
                size: data.len() as u64,
                limit,
            });
        }
        if data.len() as u64 != declared {
            return Err(PackageError::CorruptEntry {
                name: shown,
                reason: format!("{} bytes of data, the header says {declared}", data.len()),
            });
        }
        total += data.len() as u64;
        if total > limits.max_total_bytes {
            return Err(PackageError::TooLarge {
                what: "the package's uncompressed contents".into(),
                size: total,
                limit: limits.max_total_bytes,
            });
        }
        if files.insert(name, data).is_some() {
            return Err(PackageError::DuplicateEntry(shown));
        }
    }
    Ok(files)
}

/// Refuses, before the ZIP reader allocates a directory, an archive whose end-of-central-
/// directory record declares more entries than allowed or uses ZIP64 (packages this small never
/// need it). The record must be the only one in the archive's tail and end, with its comment,
/// exactly at the end of the file: the ZIP reader skips invalid records, so a decoy record
/// after (or inside the comment of) the real one must not be what this check reads.
fn check_declared_entries(bytes: &[u8], limits: &PackageLimits) -> Result<(), PackageError> {
    const EOCD: &[u8] = b"PK\x05\x06";
    const EOCD_LEN: usize = 22;
    let search_from = bytes.len().saturating_sub(EOCD_LEN + u16::MAX as usize);
    let tail = &bytes[search_from..];
    let mut records = tail
        .windows(EOCD.len())
        .enumerate()
        .filter(|(_, w)| *w == EOCD);
    let Some((at, _)) = records.next() else {
        return Err(PackageError::NotAZip(
            "no end of central directory record".into(),
        ));
    };
    if records.next().is_some() {
        return Err(PackageError::NotAZip(
            "more than one end of central directory record".into(),
        ));
    }
    let at = search_from + at;
    let Some(record) = bytes.get(at..at + EOCD_LEN) else {
        return Err(PackageError::NotAZip(
            "truncated end of central directory record".into(),
        ));
    };
    let comment_len = u16::from_le_bytes([record[20], record[21]]) as usize;
    if at + EOCD_LEN + comment_len != bytes.len() {
        return Err(PackageError::NotAZip(
            "data after the end of central directory record".into(),
        ));
    }
    let entries = u16::from_le_bytes([record[10], record[11]]);
    if entries == u16::MAX {
        return Err(PackageError::NotAZip(
            "ZIP64 archives are not accepted".into(),
        ));
    }
    if entries as usize > limits.max_entries {
        return Err(PackageError::TooManyEntries {
            count: entries as usize,
            limit: limits.max_entries,
        });
    }
    Ok(())
}

/// Writes files into a package archive, deflate-compressed, in the given (sorted) order,
/// with fixed timestamps so the same files always give the same package digest.
pub fn write_archive(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let entries = files
        .iter()
        .map(|(name, data)| (name.clone(), ArchiveEntry::Bytes(data)))
        .collect();
    let mut out = Cursor::new(Vec::new());
    write_archive_to(&mut out, &entries).expect("writing to memory cannot fail");
    out.into_inner()
}

/// One file of a package being written: bytes at hand, or a file to copy them from.
#[derive(Debug, Clone, Copy)]
pub enum ArchiveEntry<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// The content of this file, copied through a small buffer.
    File(&'a std::path::Path),
}

/// [`write_archive`] into `out`, streaming file entries, so a large component never has to
/// be held in memory to be packed.
pub fn write_archive_to<W: Write + std::io::Seek>(
    out: W,
    files: &BTreeMap<String, ArchiveEntry<'_>>,
) -> std::io::Result<()> {
    let mut writer = zip::ZipWriter::new(out);
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    for (name, entry) in files {
        writer
            .start_file(name.as_str(), options)
            .map_err(std::io::Error::other)?;
        match entry {
            ArchiveEntry::Bytes(data) => writer.write_all(data)?,
            ArchiveEntry::File(path) => {
                std::io::copy(&mut std::fs::File::open(path)?, &mut writer)?;
            }
        }
    }
    writer.finish().map_err(std::io::Error::other)?;
    Ok(())
}
