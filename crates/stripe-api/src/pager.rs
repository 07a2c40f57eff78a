//! List endpoints: one page, or every page in turn.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::client::check_id;
use crate::{ApiError, StripeApi};

/// One page of a list endpoint, newest first as Stripe returns it.
#[derive(Debug)]
pub struct Page {
    /// The objects, each with Stripe's exact bytes.
    pub data: Vec<Box<RawValue>>,
    /// Whether Stripe has more after the last object.
    pub has_more: bool,
    /// Stripe's `Date` header of this page, unix seconds.
    pub date: i64,
}

/// Fields optional so that "not a list at all" and "a list missing a field" say so apart.
#[derive(Deserialize)]
struct ListBody {
    object: Option<String>,
    data: Option<Vec<Box<RawValue>>>,
    has_more: Option<bool>,
}

#[derive(Deserialize)]
struct WithId {
    id: String,
}

impl StripeApi {
    /// One page of a list endpoint (`object: "list"`), newest first as Stripe returns it.
    pub async fn list_page(
        &self,
        path: &str,
        query: &[(String, String)],
        starting_after: Option<&str>,
    ) -> Result<Page, ApiError> {
        let mut pairs = query.to_vec();
        if let Some(cursor) = starting_after {
            check_id(cursor)?;
            pairs.push(("starting_after".into(), cursor.to_owned()));
        }
        let answer = self.request(path, &pairs).await?;
        let list: ListBody = serde_json::from_slice(&answer.body)
            .map_err(|e| ApiError::Decode(format!("{path}: not a Stripe list ({e})")))?;
        if list.object.as_deref() != Some("list") {
            let got = list.object.as_deref().unwrap_or("none");
            return Err(ApiError::Decode(format!("{path}: expected object \"list\", got {got:?}")));
        }
        let (Some(data), Some(has_more)) = (list.data, list.has_more) else {
            return Err(ApiError::Decode(format!("{path}: a list without `data` or `has_more`")));
        };
        Ok(Page { data, has_more, date: answer.date })
    }

    /// Pages through a list endpoint with `starting_after`/`has_more`; `next().await` gives
    /// one page at a time so callers can store page by page.
    pub fn pages(&self, path: &str, query: Vec<(String, String)>) -> Pager {
        Pager { api: self.clone(), path: path.to_owned(), query, cursor: None, done: false }
    }
}

/// Walks a listing page by page. Why not a stream: callers store each page before asking
/// for the next, and after an error (returned once, state kept) `next` asks for the same
/// page again, so a caller may retry or give up without losing its place.
#[derive(Debug)]
pub struct Pager {
    api: StripeApi,
    path: String,
    query: Vec<(String, String)>,
    cursor: Option<String>,
    done: bool,
}

impl Pager {
    /// The next page, or `None` once Stripe said `has_more: false`.
    pub async fn next(&mut self) -> Result<Option<Page>, ApiError> {
        if self.done {
            return Ok(None);
        }
        let page = self.api.list_page(&self.path, &self.query, self.cursor.as_deref()).await?;
        match page.data.last() {
            Some(last) if page.has_more => {
                let WithId { id } = serde_json::from_str(last.get())
                    .map_err(|e| ApiError::Decode(format!("{}: a listed object has no id ({e})", self.path)))?;
                if self.cursor.as_deref() == Some(id.as_str()) {
                    return Err(ApiError::Decode(format!("{}: Stripe repeated the page after {id}", self.path)));
                }
                self.cursor = Some(id);
            }
            // No more, or `has_more` with an empty page (nothing to continue from).
            _ => self.done = true,
        }
        Ok(Some(page))
    }

    /// The `starting_after` of the next request (the last id delivered), for logs.
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }
}
