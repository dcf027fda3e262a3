//! The REST API under `/api/v1`, one module per resource, plus the public endpoints.

pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod breakers;
pub mod docs;
pub mod health;
pub mod installations;

pub mod invoke;
pub mod me;
pub mod publish;
pub mod rules;
pub mod schemas;
pub mod secrets;
pub mod skills;
pub mod tasks;
pub mod tenants;
pub mod upload;
pub mod usage;
pub mod users;
pub mod versions;
pub mod views;

use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;

/// Default page size of list endpoints.
pub const DEFAULT_PAGE: u32 = 50;

/// Cursor pagination: pass the previous page's `next_cursor` to get the next page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

impl PageQuery {
    /// The page size asked for, checked.
    pub fn limit(&self) -> Result<u32, ApiError> {
        page_limit(self.limit)
    }
}

/// A requested page size, checked: 1 to 200, default [`DEFAULT_PAGE`].
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n @ 1..=200) => Ok(n),
        Some(_) => Err(ApiError::bad_request("limit must be between 1 and 200")),
    }
}

/// The cursor of a full page: `id` of its last item (for listings ordered by id, its id).
pub fn next_cursor<T>(items: &[T], limit: u32, id: impl Fn(&T) -> String) -> Option<String> {
    if items.len() as u32 == limit {
        items.last().map(id)
    } else {
        None
    }
}
