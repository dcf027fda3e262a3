//! The store's shared test databases.

pub use omniforge_store::testing::*;

/// A skill name the test spells out.
pub fn skill_name(name: &str) -> omniforge_types::SkillName {
    name.parse().expect("a valid skill name")
}
