//! The rules request values follow, each stated once, here: the handlers check values with
//! these, and the OpenAPI document states the same patterns and lengths (a test compares
//! them), so what the document calls valid is exactly what the server accepts.
//!
//! Lengths count characters (as JSON Schema does), not bytes. Patterns use only what
//! ECMA-262, Python and the `regex` crate read alike, and name the characters they refuse
//! rather than a whitespace class, whose members differ between them.

use std::sync::LazyLock;

use regex::Regex;

use crate::error::ApiError;

/// A rule for one string field.
pub struct Rule {
    /// The field, as named in problems.
    pub field: &'static str,
    /// A pattern the whole value matches, if any.
    pub pattern: Option<&'static str>,
    /// Fewest characters.
    pub min_chars: usize,
    /// Most characters.
    pub max_chars: usize,
    /// What the rule says, for the problem's detail.
    pub says: &'static str,
}

impl Rule {
    /// Checks `value`; the error names the field (422 `invalid-request`).
    pub fn check(&self, value: &str) -> Result<(), ApiError> {
        if self.matches(value) {
            Ok(())
        } else {
            Err(ApiError::invalid(format!("{}: {}", self.field, self.says))
                .with("field", self.field))
        }
    }

    /// Checks a query parameter's `value` (400 `bad-request`).
    pub fn check_query(&self, value: &str) -> Result<(), ApiError> {
        if self.matches(value) {
            Ok(())
        } else {
            Err(
                ApiError::bad_request(format!("{}: {}", self.field, self.says))
                    .with("field", self.field),
            )
        }
    }

    fn matches(&self, value: &str) -> bool {
        let chars = value.chars().count();
        (self.min_chars..=self.max_chars).contains(&chars)
            && self.pattern.is_none_or(|p| compiled(p).is_match(value))
    }
}

/// The compiled form of one of this module's patterns.
fn compiled(pattern: &'static str) -> &'static Regex {
    static PATTERNS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
        ALL.iter()
            .filter_map(|rule| rule.pattern)
            .map(|p| (p, Regex::new(p).expect("the rules' patterns compile")))
            .collect()
    });
    PATTERNS
        .iter()
        .find(|(p, _)| *p == pattern)
        .map(|(_, regex)| regex)
        .expect("every pattern belongs to a rule in ALL")
}

/// A tenant's slug.
pub const SLUG: Rule = Rule {
    field: "slug",
    pattern: Some("^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"),
    min_chars: 2,
    max_chars: 63,
    says: "2-63 lowercase letters, digits and '-', not starting or ending with '-'",
};

/// A display name of a tenant.
pub const TENANT_NAME: Rule = Rule {
    field: "name",
    pattern: None,
    min_chars: 1,
    max_chars: 200,
    says: "1-200 characters",
};

/// An email address: its shape only (delivery is not our concern).
pub const EMAIL: Rule = Rule {
    field: "email",
    pattern: Some("^[^@ \t\r\n]+@[^@ \t\r\n]+$"),
    min_chars: 3,
    max_chars: 254,
    says: "an address like name@example.com (one '@', no spaces, 3-254 characters)",
};

/// A user's display name.
pub const DISPLAY_NAME: Rule = Rule {
    field: "display_name",
    pattern: None,
    min_chars: 0,
    max_chars: 200,
    says: "at most 200 characters",
};

/// An API key's label.
pub const KEY_NAME: Rule = Rule {
    field: "name",
    pattern: None,
    min_chars: 1,
    max_chars: 100,
    says: "1-100 characters",
};

/// A skill's description.
pub const DESCRIPTION: Rule = Rule {
    field: "description",
    pattern: None,
    min_chars: 1,
    max_chars: 2000,
    says: "1-2000 characters",
};

/// A category or another filter word.
pub const CATEGORY: Rule = Rule {
    field: "categories",
    pattern: Some("^[a-z0-9-]+$"),
    min_chars: 1,
    max_chars: 64,
    says: "lowercase letters, digits and dashes, up to 64",
};

/// A category in a listing's filter.
pub const CATEGORY_FILTER: Rule = Rule {
    field: "category",
    ..CATEGORY
};

/// `namespace/name` as a request names a skill (whether it exists is another question).
pub const SKILL_REF: Rule = Rule {
    field: "skill",
    pattern: Some("^[^/]+/[^/]+$"),
    min_chars: 3,
    max_chars: 200,
    says: "namespace/name",
};

/// A version requirement: `*`, `latest`, or comma-separated comparators of whole versions
/// (`^1`, `~1.2`, `>=1.2.3, <2`, `=1.4.0`).
pub const REQUIREMENT: Rule = Rule {
    field: "version",
    pattern: Some(
        "^(\\*|latest|(=|>=|<=|>|<|~|\\^)?(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8}))?)?(, ?(=|>=|<=|>|<|~|\\^)?(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8}))?)?)*)$",
    ),
    min_chars: 1,
    max_chars: 200,
    says: "a version requirement such as ^1, ~1.2, >=1.2.3, <2 or *",
};

/// One entry of a policy's `http_allow`: `[scheme://]host[:port]` (docs/manifest.md). The
/// pattern states the grammar's names, wildcards and IPv4 literals; bracketed IPv6 literals
/// are accepted beyond it.
pub const HOST: Rule = Rule {
    field: "http_allow",
    pattern: Some(omniforge_control::policy::HOST_PATTERN),
    min_chars: 1,
    max_chars: omniforge_control::policy::HOST_MAX_CHARS,
    says: "[scheme://]host[:port], the host a name, *.name, * or an IP address",
};

/// Text to search skills for.
pub const SEARCH: Rule = Rule {
    field: "q",
    pattern: None,
    min_chars: 0,
    max_chars: 200,
    says: "at most 200 characters",
};

/// Every rule, for compiling patterns and for the test that compares them to the document.
pub const ALL: &[Rule] = &[
    SLUG,
    TENANT_NAME,
    EMAIL,
    DISPLAY_NAME,
    KEY_NAME,
    DESCRIPTION,
    CATEGORY,
    CATEGORY_FILTER,
    SKILL_REF,
    REQUIREMENT,
    HOST,
    SEARCH,
];

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// The document states each rule where the API takes its field.
    #[test]
    fn the_document_states_the_rules() {
        let document = serde_json::to_value(crate::openapi()).unwrap();
        let schemas = &document["components"]["schemas"];
        let property = |schema: &str, field: &str| schemas[schema]["properties"][field].clone();
        let query = |path: &str, name: &str| {
            document["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap()["schema"]
                .clone()
        };
        let states = |what: &str, schema: Value, rule: &Rule| {
            let schema = match schema["$ref"].as_str() {
                Some(reference) => {
                    schemas[reference.trim_start_matches("#/components/schemas/")].clone()
                }
                None => schema,
            };
            assert_eq!(schema["pattern"].as_str(), rule.pattern, "{what}: pattern");
            if rule.min_chars > 0 {
                assert_eq!(schema["minLength"], rule.min_chars, "{what}: minLength");
            }
            assert_eq!(schema["maxLength"], rule.max_chars, "{what}: maxLength");
        };
        states("CreateTenant.slug", property("CreateTenant", "slug"), &SLUG);
        states(
            "CreateTenant.name",
            property("CreateTenant", "name"),
            &TENANT_NAME,
        );
        states(
            "UpdateTenant.name",
            property("UpdateTenant", "name"),
            &TENANT_NAME,
        );
        states(
            "CreateTenant.owner_email",
            property("CreateTenant", "owner_email"),
            &EMAIL,
        );
        states("CreateUser.email", property("CreateUser", "email"), &EMAIL);
        states(
            "CreateUser.display_name",
            property("CreateUser", "display_name"),
            &DISPLAY_NAME,
        );
        states(
            "CreateApiKey.name",
            property("CreateApiKey", "name"),
            &KEY_NAME,
        );
        states(
            "UpdateSkill.description",
            property("UpdateSkill", "description"),
            &DESCRIPTION,
        );
        states(
            "UpdateSkill.categories",
            property("UpdateSkill", "categories")["items"].clone(),
            &CATEGORY,
        );
        states("Install.skill", property("Install", "skill"), &SKILL_REF);
        states(
            "Install.version",
            property("Install", "version"),
            &REQUIREMENT,
        );
        states(
            "InvokeRequest.version",
            property("InvokeRequest", "version"),
            &REQUIREMENT,
        );
        states(
            "TenantPolicy.http_allow",
            property("TenantPolicy", "http_allow")["items"].clone(),
            &HOST,
        );
        states(
            "GET /skills category",
            query("/api/v1/skills", "category"),
            &CATEGORY_FILTER,
        );
        states("GET /skills q", query("/api/v1/skills", "q"), &SEARCH);
    }

    #[test]
    fn rules_accept_and_refuse_what_they_say() {
        for (rule, good, bad) in [
            (
                &SLUG,
                &["ab", "acme-2", "a1"][..],
                &["a", "-ab", "ab-", "Ab", "a_b"][..],
            ),
            (
                &EMAIL,
                &["a@b", "ada@acme.test"],
                &["ab", "a b@c", "a@b@c", "@b", "a@"],
            ),
            (&KEY_NAME, &["ci", " ", "ü"], &[""]),
            (
                &SKILL_REF,
                &["a/b", "ns/name"],
                &["ab", "a/b/c", "/b", "a/"],
            ),
            (
                &REQUIREMENT,
                &["*", "latest", "^1", "~1.2", ">=1.2.3, <2", "=1.4.0", "1"],
                &["", "^", "1.2.3.4", "~~1", "x", "01", "1.02"],
            ),
            (
                &HOST,
                &[
                    "api.example.com",
                    "*.example.com",
                    "https://x:443",
                    "*://*:*",
                    "10.0.0.1",
                ],
                &["", "ftp://x", "x:70000", "a/b", "*.", "-a.com"],
            ),
        ] {
            for value in good {
                assert!(rule.matches(value), "{}: {value:?} refused", rule.field);
            }
            for value in bad {
                assert!(!rule.matches(value), "{}: {value:?} accepted", rule.field);
            }
        }
        // Characters, not bytes: 100 two-byte characters are a valid label.
        assert!(KEY_NAME.matches(&"é".repeat(100)));
        assert!(!KEY_NAME.matches(&"é".repeat(101)));
    }

    #[test]
    fn what_the_rules_accept_the_parsers_accept() {
        for requirement in ["*", "latest", "^1", "~1.2", ">=1.2.3, <2", "=1.4.0", "1,2"] {
            assert!(REQUIREMENT.matches(requirement));
            omniforge_registry::parse_requirement(requirement).unwrap();
        }
        for host in [
            "api.example.com",
            "*.example.com",
            "https://x:443",
            "*://*:*",
            "10.0.0.1",
            "a_b.c.",
            "x:0/",
        ] {
            assert!(HOST.matches(host));
            host.parse::<omniforge_registry::HostPattern>().unwrap();
        }
    }
}
