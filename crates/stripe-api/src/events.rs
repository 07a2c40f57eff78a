//! The query for `GET /v1/events`.

use crate::ApiError;

/// Stripe accepts at most this many `types[]` in one events listing.
pub const MAX_EVENT_TYPES: usize = 20;

/// Which events to list. Why a type: the `created` window and the type list are what a
/// catch-up run needs, and Stripe's limits on them are checked here, before any request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsFilter {
    /// Event types (`customer.subscription.updated`, …); empty means every type.
    pub types: Vec<String>,
    /// Only events created at or after this unix second.
    pub created_gte: Option<i64>,
    /// Only events created before this unix second.
    pub created_lt: Option<i64>,
}

impl EventsFilter {
    /// The query pairs: `types[]=…`, `created[gte]=…`, `created[lt]=…`, `limit=100` (the
    /// largest page, fewest requests). Fails on more than 20 types, an empty or spaced
    /// type, or an empty window.
    pub fn query(&self) -> Result<Vec<(String, String)>, ApiError> {
        if self.types.len() > MAX_EVENT_TYPES {
            return Err(ApiError::InvalidConfig(format!(
                "Stripe lists at most {MAX_EVENT_TYPES} event types at once, {} were asked",
                self.types.len()
            )));
        }
        if let Some(bad) =
            self.types.iter().find(|t| t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(ApiError::InvalidConfig(format!("invalid event type {bad:?}")));
        }
        if let (Some(gte), Some(lt)) = (self.created_gte, self.created_lt)
            && gte >= lt
        {
            return Err(ApiError::InvalidConfig(format!("empty event window: created >= {gte} and < {lt}")));
        }
        let mut query: Vec<(String, String)> = self.types.iter().map(|t| ("types[]".to_owned(), t.clone())).collect();
        if let Some(gte) = self.created_gte {
            query.push(("created[gte]".into(), gte.to_string()));
        }
        if let Some(lt) = self.created_lt {
            query.push(("created[lt]".into(), lt.to_string()));
        }
        query.push(("limit".into(), "100".into()));
        Ok(query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(String, String)]) -> Vec<(&str, &str)> {
        q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn builds_stripes_query() {
        let filter = EventsFilter {
            types: vec!["customer.subscription.updated".into(), "invoice.paid".into()],
            created_gte: Some(1_700_000_000),
            created_lt: Some(1_700_000_100),
        };
        let q = filter.query().expect("valid");
        assert_eq!(
            pairs(&q),
            [
                ("types[]", "customer.subscription.updated"),
                ("types[]", "invoice.paid"),
                ("created[gte]", "1700000000"),
                ("created[lt]", "1700000100"),
                ("limit", "100"),
            ]
        );
        assert_eq!(pairs(&EventsFilter::default().query().expect("valid")), [("limit", "100")]);
    }

    #[test]
    fn refuses_what_stripe_would() {
        let many = EventsFilter { types: (0..21).map(|i| format!("t.{i}")).collect(), ..Default::default() };
        assert!(many.query().expect_err("21 types").to_string().contains("at most 20"));
        let twenty = EventsFilter { types: (0..20).map(|i| format!("t.{i}")).collect(), ..Default::default() };
        assert_eq!(twenty.query().expect("20 types").len(), 21);
        let empty = EventsFilter { types: vec![String::new()], ..Default::default() };
        assert!(empty.query().is_err());
        let window = EventsFilter { created_gte: Some(5), created_lt: Some(5), ..Default::default() };
        assert!(window.query().expect_err("empty window").to_string().contains("empty event window"));
    }
}
