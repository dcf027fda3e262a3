//! `omniforge.toml`: what a skill is, what it may do, and what it asks for.
//!
//! Parsing is strict (unknown keys are errors, so a typo in a permission is caught at publish
//! time, not discovered as a denied call in production); [`Manifest::parse`] then checks the
//! values. Every field is documented with an example in `docs/manifest.md`.

use std::collections::BTreeMap;

use omniforge_types::{HostPattern, SecretName, SkillName};
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::error::PackageError;

/// A parsed and checked `omniforge.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// `[package]`: identity and metadata.
    pub package: PackageMetadata,
    /// `[skill]`: the component and its contract.
    pub skill: SkillSection,
    /// `[permissions]`: capabilities the skill asks for (none by default).
    #[serde(default)]
    pub permissions: Permissions,
    /// `[limits]`: resources the skill asks for (the tenant policy and platform cap them).
    #[serde(default)]
    pub limits: RequestedLimits,
}

/// `[package]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PackageMetadata {
    /// `namespace/name`.
    pub name: SkillName,
    /// Semantic version of this release.
    pub version: Version,
    /// One or two sentences: what the skill does.
    pub description: String,
    /// SPDX license expression, e.g. `Apache-2.0` or `MIT OR Apache-2.0`.
    pub license: String,
    /// Authors, e.g. `Ada Lovelace <ada@example.com>`.
    #[serde(default)]
    pub authors: Vec<String>,
    /// Source repository URL.
    pub repository: Option<String>,
    /// Home page URL.
    pub homepage: Option<String>,
    /// Search keywords.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Marketplace categories.
    #[serde(default)]
    pub categories: Vec<String>,
}

/// `[skill]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SkillSection {
    /// Which world the component targets.
    pub world: World,
    /// Path of the built `.wasm`, relative to the manifest; used by `omniforge skill pack`.
    /// Inside a package the component is always `skill.wasm`.
    #[serde(default = "default_component")]
    pub component: String,
    /// JSON Schema of the input: inline, or the path of a JSON file in the package.
    pub input_schema: Option<SchemaSource>,
    /// JSON Schema of the output: inline, or the path of a JSON file in the package.
    pub output_schema: Option<SchemaSource>,
}

fn default_component() -> String {
    "skill.wasm".into()
}

/// The WIT world a skill targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `omniforge:skill/skill`: may use the capabilities its permissions declare.
    Skill,
    /// `omniforge:skill/tool`: a pure function that can only log.
    Tool,
}

impl World {
    /// The world's name in WIT.
    pub fn wit_name(self) -> &'static str {
        match self {
            Self::Skill => "omniforge:skill/skill",
            Self::Tool => "omniforge:skill/tool",
        }
    }
}

/// Where a JSON Schema comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SchemaSource {
    /// The path of a JSON file in the package, e.g. `schemas/input.json`.
    File(String),
    /// The schema written inline as a TOML table.
    Inline(serde_json::Map<String, serde_json::Value>),
}

/// `[permissions]`. Everything not declared is denied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Permissions {
    /// Outbound HTTP destinations, `[scheme://]host[:port]` with `*.` and `*` wildcards.
    #[serde(default)]
    pub http: Vec<HostPattern>,
    /// Use of the key-value store scoped to (tenant, skill).
    #[serde(default)]
    pub kv: bool,
    /// Names of tenant secrets the skill may read.
    #[serde(default)]
    pub secrets: Vec<SecretName>,
    /// Completions through the host's LLM gateway.
    #[serde(default)]
    pub llm: bool,
    /// Other skills this skill may invoke, with version requirements.
    #[serde(default)]
    pub skills: BTreeMap<SkillName, VersionReq>,
}

impl Permissions {
    /// Whether nothing at all is requested.
    pub fn is_empty(&self) -> bool {
        self.http.is_empty()
            && !self.kv
            && self.secrets.is_empty()
            && !self.llm
            && self.skills.is_empty()
    }
}

/// `[limits]`: what the skill asks for; the effective limit is the minimum of this, the
/// tenant's policy and the platform's maximum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestedLimits {
    /// CPU budget in fuel units.
    pub fuel: Option<u64>,
    /// Memory in MiB, over all linear memories.
    pub memory_mb: Option<u64>,
    /// Wall-clock time in milliseconds.
    pub timeout_ms: Option<u64>,
}

const MAX_DESCRIPTION: usize = 2000;
const MAX_LIST: usize = 20;
const MAX_KEYWORDS: usize = 10;
const MAX_CATEGORIES: usize = 5;
const MAX_SECRETS: usize = 32;
const MAX_HTTP: usize = 32;
const MAX_SKILLS: usize = 32;

fn field(field: &str, message: impl Into<String>) -> PackageError {
    PackageError::ManifestField {
        field: field.into(),
        message: message.into(),
    }
}

impl Manifest {
    /// Parses and checks `omniforge.toml`.
    pub fn parse(text: &str) -> Result<Self, PackageError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| PackageError::ManifestSyntax(e.to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Checks the values that the types alone do not.
    fn check(&self) -> Result<(), PackageError> {
        let p = &self.package;
        if p.description.trim().is_empty() {
            return Err(field("package.description", "must not be empty"));
        }
        if p.description.chars().count() > MAX_DESCRIPTION {
            return Err(field("package.description", "at most 2000 characters"));
        }
        spdx::Expression::parse(&p.license).map_err(|e| {
            field(
                "package.license",
                format!("not an SPDX license expression: {e}"),
            )
        })?;
        check_list("package.authors", &p.authors, MAX_LIST, 200, |_| true)?;
        check_list("package.keywords", &p.keywords, MAX_KEYWORDS, 32, |k| {
            k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_+".contains(c))
        })?;
        check_list(
            "package.categories",
            &p.categories,
            MAX_CATEGORIES,
            48,
            |c| {
                c.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            },
        )?;
        for (name, url) in [
            ("package.repository", &p.repository),
            ("package.homepage", &p.homepage),
        ] {
            if let Some(url) = url
                && (!(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 500)
            {
                return Err(field(
                    name,
                    "must be an http(s) URL of at most 500 characters",
                ));
            }
        }
        // Read by `pack` on the author's machine only (never a package entry), so `..` is fine:
        // a cargo workspace builds into a sibling `target/` directory.
        let component = &self.skill.component;
        if component.is_empty()
            || component.starts_with('/')
            || component.contains(['\\', '\0'])
            || component.len() > 255
        {
            return Err(field(
                "skill.component",
                "must be a relative path to the built .wasm",
            ));
        }
        for (name, schema) in [
            ("skill.input-schema", &self.skill.input_schema),
            ("skill.output-schema", &self.skill.output_schema),
        ] {
            if let Some(SchemaSource::File(path)) = schema {
                check_relative_path(name, path)?;
                if !path.ends_with(".json") {
                    return Err(field(name, "a schema file must be a .json file"));
                }
            }
        }
        self.check_permissions()?;
        let l = &self.limits;
        if l.fuel == Some(0) {
            return Err(field("limits.fuel", "must be at least 1"));
        }
        if l.memory_mb.is_some_and(|m| !(1..=65_536).contains(&m)) {
            return Err(field("limits.memory-mb", "must be between 1 and 65536"));
        }
        if l.timeout_ms.is_some_and(|t| !(1..=3_600_000).contains(&t)) {
            return Err(field("limits.timeout-ms", "must be between 1 and 3600000"));
        }
        Ok(())
    }

    fn check_permissions(&self) -> Result<(), PackageError> {
        let perms = &self.permissions;
        if self.skill.world == World::Tool && !perms.is_empty() {
            return Err(field(
                "permissions",
                "a skill with world = \"tool\" can only log; declare world = \"skill\" to use \
                 capabilities",
            ));
        }
        if perms.http.len() > MAX_HTTP {
            return Err(field("permissions.http", "at most 32 host patterns"));
        }
        if perms.skills.len() > MAX_SKILLS {
            return Err(field("permissions.skills", "at most 32 skills"));
        }
        if perms.secrets.len() > MAX_SECRETS {
            return Err(field("permissions.secrets", "at most 32 names"));
        }
        let unique: std::collections::BTreeSet<&SecretName> = perms.secrets.iter().collect();
        if unique.len() != perms.secrets.len() {
            return Err(field("permissions.secrets", "duplicate entries"));
        }
        Ok(())
    }

    /// The manifest as TOML (for writing it back into a package).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a manifest always serializes")
    }
}

fn check_list(
    name: &str,
    items: &[String],
    max_items: usize,
    max_len: usize,
    allowed: impl Fn(&str) -> bool,
) -> Result<(), PackageError> {
    if items.len() > max_items {
        return Err(field(name, format!("at most {max_items} entries")));
    }
    for item in items {
        if item.is_empty() || item.chars().count() > max_len || !allowed(item) {
            let shown: String = item.chars().take(40).collect();
            return Err(field(
                name,
                format!("{shown:?} is empty, longer than {max_len} or malformed"),
            ));
        }
    }
    let mut unique: Vec<&String> = items.iter().collect();
    unique.sort();
    unique.dedup();
    if unique.len() != items.len() {
        return Err(field(name, "duplicate entries"));
    }
    Ok(())
}

/// A path inside a package or next to the manifest: relative, `/`-separated, no `..`.
pub(crate) fn check_relative_path(name: &str, path: &str) -> Result<(), PackageError> {
    let bad = path.is_empty()
        || path.len() > 255
        || path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path
            .split('/')
            .any(|part| part.is_empty() || part == ".." || part == ".")
        || path.chars().nth(1) == Some(':');
    if bad {
        return Err(field(
            name,
            format!("{path:?} must be a relative path without '..'"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [package]
        name = "examples/hello"
        version = "0.1.0"
        description = "Greets by name"
        license = "Apache-2.0"

        [skill]
        world = "tool"
    "#;

    #[test]
    fn a_minimal_manifest_parses_with_defaults() {
        let m = Manifest::parse(MINIMAL).unwrap();
        assert_eq!(m.package.name.as_str(), "examples/hello");
        assert_eq!(m.skill.component, "skill.wasm");
        assert!(m.permissions.is_empty());
        assert_eq!(m.limits, RequestedLimits::default());
    }

    #[test]
    fn a_full_manifest_parses() {
        let text = r#"
            [package]
            name = "acme/research"
            version = "1.2.3-beta.1"
            description = "Finds things"
            license = "MIT OR Apache-2.0"
            authors = ["Ada <ada@example.com>"]
            repository = "https://example.com/acme/research"
            keywords = ["search", "web"]
            categories = ["research"]

            [skill]
            world = "skill"
            component = "target/wasm32-wasip2/release/research.wasm"
            input-schema = { type = "object", required = ["query"], properties = { query = { type = "string" } } }
            output-schema = "schemas/output.json"

            [permissions]
            http = ["api.example.com", "*.wikipedia.org"]
            kv = true
            secrets = ["SEARCH_API_KEY"]
            llm = true
            skills = { "acme/summarize" = "^1.2" }

            [limits]
            fuel = 2000000000
            memory-mb = 64
            timeout-ms = 5000
        "#;
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.permissions.http.len(), 2);
        assert_eq!(
            m.permissions.skills.values().next().unwrap().to_string(),
            "^1.2"
        );
        assert!(matches!(
            m.skill.input_schema,
            Some(SchemaSource::Inline(_))
        ));
        assert!(matches!(m.skill.output_schema, Some(SchemaSource::File(_))));
        assert_eq!(m.limits.memory_mb, Some(64));
        let again = Manifest::parse(&m.to_toml()).unwrap();
        assert_eq!(again, m, "the manifest round-trips through TOML");
    }

    fn rejects(text: &str, needle: &str) {
        match Manifest::parse(text) {
            Err(e) => assert!(
                e.to_string().contains(needle),
                "{e} should mention {needle:?}"
            ),
            Ok(_) => panic!("should be rejected ({needle}): {text}"),
        }
    }

    #[test]
    fn bad_manifests_are_rejected_with_the_field_named() {
        rejects(&MINIMAL.replace("0.1.0", "1.0"), "version");
        rejects(
            &MINIMAL.replace("examples/hello", "Examples/Hello"),
            "lowercase",
        );
        rejects(
            &MINIMAL.replace("Apache-2.0", "Apache 2 or whatever"),
            "package.license",
        );
        rejects(&MINIMAL.replace("\"tool\"", "\"daemon\""), "world");
        rejects(&format!("{MINIMAL}\n[permissions]\nkv = true\n"), "tool");
        rejects(&format!("{MINIMAL}\nsurprise = 1\n"), "surprise");
        rejects(
            &MINIMAL.replace(
                "world = \"tool\"",
                "world = \"tool\"\ncomponent = \"/abs/x.wasm\"",
            ),
            "skill.component",
        );
        rejects(
            &MINIMAL.replace(
                "world = \"tool\"",
                "world = \"skill\"\n[permissions]\nhttp = [\"ftp://x\"]",
            ),
            "scheme",
        );
        rejects(
            &format!("{MINIMAL}\n[limits]\nmemory-mb = 0\n"),
            "limits.memory-mb",
        );
        rejects("not toml = = =", "invalid omniforge.toml");
    }
}
