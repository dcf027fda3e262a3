//! One permission at a time: what an installation accepts and what a newer version asks for
//! beyond it, named the same way in API answers, errors and the CLI.

use std::fmt;

use omniforge_types::{HostPattern, PermissionKind, SecretName, SkillName};
use serde::{Serialize, Serializer};

use crate::manifest::Permissions;

/// One permission a manifest's `[permissions]` asks for. Shown as `kv`, `http:<host>`,
/// `secret:<name>`, `llm` or `skill:<namespace/name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    /// The key-value store.
    Kv,
    /// Outbound HTTP to a destination.
    Http(HostPattern),
    /// Reading a tenant secret.
    Secret(SecretName),
    /// Completions through the host's LLM gateway.
    Llm,
    /// Calling a skill (with the requirement the manifest names).
    Skill(SkillName),
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kv => f.write_str("kv"),
            Self::Http(host) => write!(f, "http:{host}"),
            Self::Secret(name) => write!(f, "secret:{name}"),
            Self::Llm => f.write_str("llm"),
            Self::Skill(name) => write!(f, "skill:{name}"),
        }
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `permissions` as one comma-separated line, for messages.
pub fn describe(permissions: &[Permission]) -> String {
    permissions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Permissions {
    /// The kinds of permission asked for, in [`PermissionKind::ALL`]'s order.
    pub fn kinds(&self) -> Vec<PermissionKind> {
        PermissionKind::ALL
            .into_iter()
            .filter(|kind| match kind {
                PermissionKind::Http => !self.http.is_empty(),
                PermissionKind::Kv => self.kv,
                PermissionKind::Secrets => !self.secrets.is_empty(),
                PermissionKind::Llm => self.llm,
                PermissionKind::Skills => !self.skills.is_empty(),
            })
            .collect()
    }

    /// What `self` asks for that `accepted` does not cover: a skill whose requirement
    /// changed counts as new, since accepting a call to `^1` is not accepting `^2`.
    pub fn beyond(&self, accepted: &Permissions) -> Vec<Permission> {
        let mut new = Vec::new();
        for host in &self.http {
            if !accepted.http.contains(host) {
                new.push(Permission::Http(host.clone()));
            }
        }
        if self.kv && !accepted.kv {
            new.push(Permission::Kv);
        }
        for secret in &self.secrets {
            if !accepted.secrets.contains(secret) {
                new.push(Permission::Secret(secret.clone()));
            }
        }
        if self.llm && !accepted.llm {
            new.push(Permission::Llm);
        }
        for (skill, requirement) in &self.skills {
            if accepted.skills.get(skill) != Some(requirement) {
                new.push(Permission::Skill(skill.clone()));
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(toml_text: &str) -> Permissions {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn beyond_names_what_was_not_accepted() {
        let accepted =
            perms("kv = true\nhttp = [\"api.example.com\"]\nskills = { \"a/b\" = \"^1\" }");
        assert!(accepted.beyond(&accepted).is_empty());
        let more = perms(
            "kv = true\nllm = true\nhttp = [\"api.example.com\", \"x.example.org\"]\n\
             secrets = [\"TOKEN\"]\nskills = { \"a/b\" = \"^2\", \"c/d\" = \"*\" }",
        );
        let new = more.beyond(&accepted);
        assert_eq!(
            describe(&new),
            "http:https://x.example.org, secret:TOKEN, llm, skill:a/b, skill:c/d"
        );
        assert_eq!(
            serde_json::to_value(&new[0]).unwrap(),
            "http:https://x.example.org"
        );
        // A changed requirement is new in both directions.
        assert_eq!(describe(&accepted.beyond(&more)), "skill:a/b");
        assert!(perms("kv = true").beyond(&more).is_empty());
        assert_eq!(
            more.kinds(),
            [
                PermissionKind::Http,
                PermissionKind::Kv,
                PermissionKind::Secrets,
                PermissionKind::Llm,
                PermissionKind::Skills
            ]
        );
        assert_eq!(perms("kv = true").kinds(), [PermissionKind::Kv]);
    }
}
