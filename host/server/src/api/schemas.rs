//! Schemas of request values that the Rust types alone do not state: enumerations kept as
//! strings in the types (roles, scopes) and strings with a pattern (categories, host
//! patterns). Used only by the OpenAPI document (`value_type = …`); the values are checked
//! by [`crate::api::rules`] and the types' parsers.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::api::rules;
use crate::auth::rbac::Permission;

fn strings(values: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .into()
}

fn text(rule: &rules::Rule) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(rule.pattern)
        .min_length(Some(rule.min_chars))
        .max_length(Some(rule.max_chars))
        .into()
}

/// A role: `owner`, `admin`, `developer`, `operator` or `viewer`.
pub struct RoleName;

impl PartialSchema for RoleName {
    fn schema() -> RefOr<Schema> {
        strings(omniforge_store::Role::ALL.iter().map(|r| r.as_str()))
    }
}

impl ToSchema for RoleName {}

/// A key's scope: a permission's name, or `*`.
pub struct ScopeName;

impl PartialSchema for ScopeName {
    fn schema() -> RefOr<Schema> {
        strings(std::iter::once("*").chain(Permission::ALL.iter().map(|p| p.as_str())))
    }
}

impl ToSchema for ScopeName {}

/// A marketplace category: lowercase letters, digits and dashes.
pub struct CategoryName;

impl PartialSchema for CategoryName {
    fn schema() -> RefOr<Schema> {
        text(&rules::CATEGORY)
    }
}

impl ToSchema for CategoryName {}
