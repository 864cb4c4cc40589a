//! Cursor pagination shared by the list routes: a listing is one page of
//! results (on the wire `data` and `nextCursor`), not a portal page.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiError;

/// Default and maximum page sizes.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 100;

/// `?limit=&cursor=` on every list route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    pub(crate) limit: Option<i64>,
    pub(crate) cursor: Option<String>,
    pub(crate) tenant: Option<String>,
}

impl ListQuery {
    /// The requested page size, validated.
    pub(crate) fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::invalid_field("limit", format!("must be between 1 and {MAX_LIMIT}"))),
        }
    }

    /// The cursor parsed as an id.
    pub(crate) fn cursor<T: std::str::FromStr>(&self) -> Result<Option<T>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| c.parse().map_err(|_| ApiError::invalid_field("cursor", "is not a cursor from a previous page")))
            .transpose()
    }
}

/// A page of results; `nextCursor` is null on the last page.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Listing<T> {
    pub(crate) data: Vec<T>,
    /// Pass as `cursor` for the next page.
    pub(crate) next_cursor: Option<String>,
}

impl<T> Listing<T> {
    /// A page from a result fetched with `limit`; a full page has a next cursor.
    pub(crate) fn new(data: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Self {
        let full = usize::try_from(limit).is_ok_and(|l| data.len() == l);
        let next_cursor = if full { data.last().map(cursor_of) } else { None };
        Self { data, next_cursor }
    }
}
