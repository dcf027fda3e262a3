//! Choosing a version for a requirement like `^1.2`.

use semver::{Version, VersionReq};

/// One published version of a skill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedVersion {
    /// The version.
    pub version: Version,
    /// Yanked versions are never chosen by a requirement, but stay fetchable by exact version.
    pub yanked: bool,
}

/// The highest non-yanked version matching `requirement`, with semver's pre-release rule: a
/// pre-release matches only a requirement that names a pre-release of the same
/// `major.minor.patch` (so `*` and `^1` never pick `2.0.0-beta`).
pub fn resolve<'a>(
    versions: impl IntoIterator<Item = &'a PublishedVersion>,
    requirement: &VersionReq,
) -> Option<&'a PublishedVersion> {
    versions
        .into_iter()
        .filter(|v| !v.yanked && requirement.matches(&v.version))
        .max_by(|a, b| a.version.cmp(&b.version))
}

/// The version with exactly this number, yanked or not.
pub fn find_exact<'a>(
    versions: impl IntoIterator<Item = &'a PublishedVersion>,
    version: &Version,
) -> Option<&'a PublishedVersion> {
    versions.into_iter().find(|v| v.version == *version)
}

/// Parses a requirement; `latest` and the empty string mean `*`.
pub fn parse_requirement(text: &str) -> Result<VersionReq, semver::Error> {
    match text.trim() {
        "" | "latest" => Ok(VersionReq::STAR),
        other => VersionReq::parse(other),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn published(list: &[(&str, bool)]) -> Vec<PublishedVersion> {
        list.iter()
            .map(|(v, yanked)| PublishedVersion {
                version: v.parse().unwrap(),
                yanked: *yanked,
            })
            .collect()
    }

    fn pick(list: &[(&str, bool)], requirement: &str) -> Option<String> {
        let versions = published(list);
        let requirement = parse_requirement(requirement).unwrap();
        resolve(&versions, &requirement).map(|v| v.version.to_string())
    }

    #[test]
    fn resolution_table() {
        let list = [
            ("1.0.0", false),
            ("1.2.0", false),
            ("1.2.5", false),
            ("1.3.0", true),
            ("1.4.0", false),
            ("1.4.7", false),
            ("2.0.0-beta.1", false),
            ("2.0.0", true),
        ];
        let cases = [
            ("^1.2", Some("1.4.7")),
            ("~1.4.0", Some("1.4.7")),
            ("~1.2", Some("1.2.5")),
            ("=1.3.0", None),
            ("=1.2.0", Some("1.2.0")),
            ("*", Some("1.4.7")),
            ("latest", Some("1.4.7")),
            ("^2", None),
            ("=2.0.0-beta.1", Some("2.0.0-beta.1")),
            (">=2.0.0-beta.0", Some("2.0.0-beta.1")),
            ("^3", None),
            ("<1.2", Some("1.0.0")),
        ];
        for (requirement, expected) in cases {
            assert_eq!(
                pick(&list, requirement).as_deref(),
                expected,
                "requirement {requirement}"
            );
        }
    }

    #[test]
    fn yanked_versions_are_fetchable_by_exact_version() {
        let versions = published(&[("1.0.0", true)]);
        assert!(resolve(&versions, &VersionReq::STAR).is_none());
        assert!(find_exact(&versions, &"1.0.0".parse().unwrap()).is_some_and(|v| v.yanked));
    }

    #[test]
    fn nothing_published_resolves_to_nothing() {
        assert_eq!(pick(&[], "*"), None);
    }

    fn arbitrary_version() -> impl Strategy<Value = Version> {
        (0u64..4, 0u64..4, 0u64..4, proptest::option::of(0u64..3)).prop_map(|(a, b, c, pre)| {
            let mut v = Version::new(a, b, c);
            if let Some(n) = pre {
                v.pre = semver::Prerelease::new(&format!("rc.{n}")).unwrap();
            }
            v
        })
    }

    fn arbitrary_requirement() -> impl Strategy<Value = VersionReq> {
        let op = prop_oneof![
            Just("^"),
            Just("~"),
            Just("="),
            Just(">="),
            Just("<"),
            Just("")
        ];
        (op, arbitrary_version())
            .prop_map(|(op, v)| VersionReq::parse(&format!("{op}{v}")).unwrap_or(VersionReq::STAR))
    }

    proptest! {
        #[test]
        fn resolution_never_returns_a_yanked_or_non_matching_version(
            list in proptest::collection::vec((arbitrary_version(), any::<bool>()), 0..12),
            requirement in arbitrary_requirement(),
        ) {
            let versions: Vec<_> = list
                .into_iter()
                .map(|(version, yanked)| PublishedVersion { version, yanked })
                .collect();
            match resolve(&versions, &requirement) {
                Some(chosen) => {
                    prop_assert!(!chosen.yanked);
                    prop_assert!(requirement.matches(&chosen.version));
                    // and it is the highest such version
                    for v in &versions {
                        if !v.yanked && requirement.matches(&v.version) {
                            prop_assert!(v.version <= chosen.version);
                        }
                    }
                }
                None => prop_assert!(
                    versions.iter().all(|v| v.yanked || !requirement.matches(&v.version))
                ),
            }
        }
    }
}
