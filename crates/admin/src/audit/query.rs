//! One parser for audit listings, shared by `GET /api/audit`, the dashboard's audit page and
//! `subsync audit list`: the same words (`since`, `actor`, `limit`) mean the same thing
//! everywhere, and every mistake gets the same message.

use chrono::{DateTime, Utc};

use super::{AuditFilter, MAX_LIST_LIMIT, validate_actor_name};
use crate::error::AdminError;
use crate::query::parse_time;

/// Entries listed when no limit is given.
pub const DEFAULT_LIST_LIMIT: u32 = 50;

/// The names accepted in an audit query string.
pub const AUDIT_PARAMS: &[&str] = &["since", "actor", "limit"];

/// An audit listing as an operator writes it: strings, checked by [`AuditQuery::filter`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Recorded at or after: RFC 3339, or an age like `15m`, `2h`, `7d`.
    pub since: Option<String>,
    /// Only this actor (exact name).
    pub actor: Option<String>,
    /// How many entries (1–1000; default 50).
    pub limit: Option<String>,
}

impl AuditQuery {
    /// Reads query-string pairs; empty values count as absent, unknown names are refused.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, AdminError> {
        let mut q = AuditQuery::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "since" => &mut q.since,
                "actor" => &mut q.actor,
                "limit" => &mut q.limit,
                other => {
                    return Err(AdminError::InvalidInput(format!(
                        "unknown query parameter `{other}` (expected: {})",
                        AUDIT_PARAMS.join(", ")
                    )));
                }
            };
            if !value.trim().is_empty() {
                *slot = Some(value.clone());
            }
        }
        Ok(q)
    }

    /// The checked filter, with ages counted back from `now`.
    pub fn filter(&self, now: DateTime<Utc>) -> Result<AuditFilter, AdminError> {
        let since = self.since.as_deref().map(|s| parse_time(s, now)).transpose()?;
        let actor = self
            .actor
            .as_deref()
            .map(|a| validate_actor_name(a).map_err(|e| AdminError::InvalidInput(format!("actor: {e}"))))
            .transpose()?;
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIST_LIMIT,
            Some(text) => {
                text.trim().parse::<u32>().ok().filter(|n| (1..=MAX_LIST_LIMIT).contains(n)).ok_or_else(|| {
                    AdminError::InvalidInput(format!(
                        "limit must be a whole number from 1 to {MAX_LIST_LIMIT}, got `{text}`"
                    ))
                })?
            }
        };
        Ok(AuditFilter { since, actor, limit })
    }

    /// The query string that asks for the same listing (for links).
    pub fn to_query_string(&self) -> String {
        let parts = [("since", &self.since), ("actor", &self.actor), ("limit", &self.limit)];
        parts
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", crate::html::url_encode(v))))
            .collect::<Vec<_>>()
            .join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_since_actor_and_limit() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z").unwrap().with_timezone(&Utc);
        let q = AuditQuery::from_pairs(&pairs(&[("since", "2h"), ("actor", " alice "), ("limit", "10")])).unwrap();
        let f = q.filter(now).unwrap();
        assert_eq!(f.since, Some(now - chrono::Duration::hours(2)));
        assert_eq!(f.actor.as_deref(), Some("alice"));
        assert_eq!(f.limit, 10);
        let stamp = AuditQuery { since: Some("2026-12-01T00:00:00Z".into()), ..AuditQuery::default() };
        assert_eq!(stamp.filter(now).unwrap().since.unwrap().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        let empty = AuditQuery::from_pairs(&pairs(&[("since", ""), ("actor", "")])).unwrap();
        assert_eq!(empty.filter(now).unwrap(), AuditFilter { since: None, actor: None, limit: DEFAULT_LIST_LIMIT });
        assert_eq!(q.to_query_string(), "since=2h&actor=%20alice%20&limit=10");
    }

    #[test]
    fn refuses_mistakes_with_clear_messages() {
        let now = Utc::now();
        let err = |q: AuditQuery| q.filter(now).unwrap_err().to_string();
        assert!(AuditQuery::from_pairs(&pairs(&[("user", "x")])).unwrap_err().to_string().contains("`user`"));
        assert!(err(AuditQuery { limit: Some("0".into()), ..AuditQuery::default() }).contains("from 1 to 1000"));
        assert!(err(AuditQuery { limit: Some("1001".into()), ..AuditQuery::default() }).contains("got `1001`"));
        assert!(err(AuditQuery { since: Some("yesterday".into()), ..AuditQuery::default() }).contains("bad timestamp"));
        assert!(err(AuditQuery { actor: Some("a\nb".into()), ..AuditQuery::default() }).contains("control"));
    }
}
