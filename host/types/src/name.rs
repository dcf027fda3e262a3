//! Skill names: `namespace/name`.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Longest namespace or name part, in characters.
const MAX_PART: usize = 64;

/// A skill's full name, `namespace/name`. Each part is 1–64 characters of lowercase ASCII
/// letters, digits and `-`, starting and ending with a letter or digit. A namespace belongs
/// to the first tenant that publishes into it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SkillName {
    full: String,
    slash: usize,
}

/// A string that is not a valid [`SkillName`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid skill name {name:?}: {reason}")]
pub struct InvalidSkillName {
    name: String,
    reason: &'static str,
}

impl SkillName {
    /// The namespace (before the `/`).
    pub fn namespace(&self) -> &str {
        &self.full[..self.slash]
    }

    /// The name within the namespace (after the `/`).
    pub fn name(&self) -> &str {
        &self.full[self.slash + 1..]
    }

    /// The full `namespace/name`.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

fn check_part(part: &str) -> Result<(), &'static str> {
    if part.is_empty() {
        return Err("the namespace and the name must both be non-empty");
    }
    if part.len() > MAX_PART {
        return Err("each part is at most 64 characters");
    }
    if !part
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("use only lowercase letters, digits and '-'");
    }
    if part.starts_with('-') || part.ends_with('-') {
        return Err("a part must start and end with a letter or digit");
    }
    Ok(())
}

impl FromStr for SkillName {
    type Err = InvalidSkillName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| InvalidSkillName {
            name: name.chars().take(200).collect(),
            reason,
        };
        let (namespace, rest) = name
            .split_once('/')
            .ok_or_else(|| invalid("expected namespace/name"))?;
        if rest.contains('/') {
            return Err(invalid("expected exactly one '/'"));
        }
        check_part(namespace).map_err(invalid)?;
        check_part(rest).map_err(invalid)?;
        Ok(Self {
            full: name.to_owned(),
            slash: namespace.len(),
        })
    }
}

impl fmt::Display for SkillName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for SkillName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.full)
    }
}

crate::text_serde!(SkillName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_split_into_namespace_and_name() {
        let name: SkillName = "acme-labs/text-stats2".parse().unwrap();
        assert_eq!(
            (name.namespace(), name.name()),
            ("acme-labs", "text-stats2")
        );
        assert_eq!(name.to_string(), "acme-labs/text-stats2");
    }

    #[test]
    fn invalid_names_are_rejected() {
        let long = format!("a/{}", "x".repeat(65));
        for bad in [
            "", "acme", "/x", "x/", "a/b/c", "Acme/x", "a_b/x", "-a/x", "a/x-", "a/ x", &long,
        ] {
            assert!(
                bad.parse::<SkillName>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn names_round_trip_through_serde() {
        let name: SkillName = serde_json::from_str("\"ns/n\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"ns/n\"");
        assert!(serde_json::from_str::<SkillName>("\"NS/n\"").is_err());
    }
}
