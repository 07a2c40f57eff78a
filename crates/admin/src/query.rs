//! One parser for job filters, shared by the API query string, the dashboard's filter form,
//! the bulk-action JSON body and the CLI flags: the same words mean the same thing everywhere,
//! and every mistake gets the same clear message.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use subsync_queue::{JobFilter, JobState, Page};

use crate::error::AdminError;

/// A job filter as an operator writes it: strings, to be checked by [`JobQuery::filter`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// States (`pending`, `running`, `succeeded`, `dead`, `cancelled`); several allowed,
    /// comma-separated or repeated.
    #[serde(default, deserialize_with = "one_or_many")]
    pub state: Vec<String>,
    /// Queue name.
    #[serde(default)]
    pub queue: Option<String>,
    /// Group = Stripe subscription id.
    #[serde(default)]
    pub group: Option<String>,
    /// Unique key = Stripe event id.
    #[serde(default)]
    pub key: Option<String>,
    /// Enqueued at or after: RFC 3339, or an age like `15m`, `2h`, `7d`.
    #[serde(default)]
    pub since: Option<String>,
    /// Enqueued before: RFC 3339, or an age.
    #[serde(default)]
    pub until: Option<String>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// The names accepted in a jobs query string.
pub const LIST_PARAMS: &[&str] = &["state", "queue", "group", "key", "since", "until", "limit", "offset"];

/// A parsed listing request: the filter plus paging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// The filter.
    pub query: JobQuery,
    /// Page size, if given.
    pub limit: Option<String>,
    /// Offset, if given.
    pub offset: Option<String>,
}

impl ListQuery {
    /// Builds from query-string pairs (repeated keys allowed). Empty values are ignored (an
    /// HTML form submits its empty fields); unknown names are refused, so a typo such as
    /// `status=dead` is not silently ignored.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, AdminError> {
        let mut out = ListQuery::default();
        for (name, value) in pairs {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let slot = match name.as_str() {
                "state" => {
                    out.query.state.push(value.to_string());
                    continue;
                }
                "queue" => &mut out.query.queue,
                "group" => &mut out.query.group,
                "key" => &mut out.query.key,
                "since" => &mut out.query.since,
                "until" => &mut out.query.until,
                "limit" => &mut out.limit,
                "offset" => &mut out.offset,
                other => {
                    return Err(AdminError::InvalidInput(format!(
                        "unknown query parameter `{other}` (expected one of: {})",
                        LIST_PARAMS.join(", ")
                    )));
                }
            };
            *slot = Some(value.to_string());
        }
        Ok(out)
    }

    /// The page, defaulting to 50 rows from the start.
    pub fn page(&self) -> Result<Page, AdminError> {
        let limit = match &self.limit {
            None => Page::default().limit,
            Some(s) => s.parse::<u32>().ok().filter(|n| (1..=Page::MAX_LIMIT).contains(n)).ok_or_else(|| {
                AdminError::InvalidInput(format!("limit `{s}` is out of range: use 1 to {}", Page::MAX_LIMIT))
            })?,
        };
        let offset = match &self.offset {
            None => 0,
            Some(s) => s
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= i64::MAX as u64)
                .ok_or_else(|| AdminError::InvalidInput(format!("offset `{s}` is not a non-negative number")))?,
        };
        Ok(Page { limit, offset })
    }

    /// The query string for this listing at another offset (paging links).
    pub fn to_query_string(&self, offset: u64) -> String {
        let q = &self.query;
        let mut pairs: Vec<(&str, String)> = q.state.iter().map(|s| ("state", s.clone())).collect();
        for (name, value) in [
            ("queue", &q.queue),
            ("group", &q.group),
            ("key", &q.key),
            ("since", &q.since),
            ("until", &q.until),
            ("limit", &self.limit),
        ] {
            if let Some(v) = value {
                pairs.push((name, v.clone()));
            }
        }
        if offset > 0 {
            pairs.push(("offset", offset.to_string()));
        }
        pairs.iter().map(|(k, v)| format!("{k}={}", crate::html::url_encode(v))).collect::<Vec<_>>().join("&")
    }
}

impl JobQuery {
    /// The queue filter, checking every field. `now` anchors relative ages.
    pub fn filter(&self, now: DateTime<Utc>) -> Result<JobFilter, AdminError> {
        let mut states = Vec::new();
        for raw in &self.state {
            for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let state: JobState = part.parse()?;
                if !states.contains(&state) {
                    states.push(state);
                }
            }
        }
        let created_after = self.since.as_deref().map(|s| parse_time(s, now)).transpose()?;
        let created_before = self.until.as_deref().map(|s| parse_time(s, now)).transpose()?;
        if let (Some(a), Some(b)) = (created_after, created_before)
            && a >= b
        {
            return Err(AdminError::InvalidInput(format!(
                "`since` ({}) must be before `until` ({})",
                a.to_rfc3339(),
                b.to_rfc3339()
            )));
        }
        let nonempty = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(String::from);
        Ok(JobFilter {
            states,
            queue: nonempty(&self.queue),
            group_key: nonempty(&self.group),
            unique_key: nonempty(&self.key),
            created_after,
            created_before,
        })
    }

    /// True when nothing narrows the selection. Bulk actions refuse that.
    pub fn is_empty(&self) -> bool {
        self.state.iter().all(|s| s.trim().is_empty())
            && [&self.queue, &self.group, &self.key, &self.since, &self.until]
                .iter()
                .all(|v| v.as_deref().is_none_or(|s| s.trim().is_empty()))
    }

    /// A short human description, for confirmations and logs (`state=dead group=sub_1`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.state.is_empty() {
            parts.push(format!("state={}", self.state.join(",")));
        }
        for (name, value) in [
            ("queue", &self.queue),
            ("group", &self.group),
            ("key", &self.key),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = value {
                parts.push(format!("{name}={v}"));
            }
        }
        if parts.is_empty() { "all jobs".to_string() } else { parts.join(" ") }
    }
}

/// Parses a point in time: RFC 3339 (`2026-11-24T02:00:00Z`), or an age before `now` such as
/// `90s`, `15m`, `2h`, `7d` — what an operator actually types at 2 a.m.
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, AdminError> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let bad = || {
        AdminError::InvalidInput(format!(
            "bad timestamp `{s}`: use RFC 3339 (e.g. 2026-11-24T02:00:00Z) or an age like 90s, 15m, 2h, 7d"
        ))
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = s.split_at(split);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let age = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        _ => None,
    }
    .ok_or_else(bad)?;
    now.checked_sub_signed(age).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn parses_states_times_and_paging() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T02:00:00Z").unwrap().with_timezone(&Utc);
        let q = ListQuery::from_pairs(&pairs(&[
            ("state", "dead,cancelled"),
            ("state", "dead"),
            ("group", "sub_1"),
            ("since", "2h"),
            ("until", "2026-11-24T01:59:00+00:00"),
            ("limit", "10"),
            ("offset", "20"),
            ("key", ""),
        ]))
        .unwrap();
        let f = q.query.filter(now).unwrap();
        assert_eq!(f.states, vec![JobState::Dead, JobState::Cancelled]);
        assert_eq!(f.group_key.as_deref(), Some("sub_1"));
        assert_eq!(f.unique_key, None);
        assert_eq!(f.created_after.unwrap().to_rfc3339(), "2026-11-24T00:00:00+00:00");
        assert_eq!(q.page().unwrap(), Page { limit: 10, offset: 20 });
        assert_eq!(
            q.to_query_string(70),
            "state=dead%2Ccancelled&state=dead&group=sub_1&since=2h&until=2026-11-24T01%3A59%3A00%2B00%3A00&limit=10&offset=70"
        );
    }

    #[test]
    fn refuses_mistakes_with_clear_messages() {
        let now = Utc::now();
        let err = |p: &[(&str, &str)]| {
            let q = ListQuery::from_pairs(&pairs(p))?;
            q.query.filter(now)?;
            q.page()?;
            Ok::<(), AdminError>(())
        };
        let msg = |p: &[(&str, &str)]| err(p).unwrap_err().to_string();
        assert!(msg(&[("state", "deadd")]).contains("unknown job state `deadd`"));
        assert!(msg(&[("status", "dead")]).contains("unknown query parameter `status`"));
        assert!(msg(&[("since", "yesterday")]).contains("bad timestamp `yesterday`"));
        assert!(msg(&[("since", "5y")]).contains("bad timestamp"));
        assert!(msg(&[("limit", "0")]).contains("limit `0` is out of range"));
        assert!(msg(&[("limit", "1001")]).contains("out of range"));
        assert!(msg(&[("offset", "-1")]).contains("offset `-1`"));
        assert!(msg(&[("since", "1h"), ("until", "2h")]).contains("must be before"));
        assert!(err(&[("limit", "1000")]).is_ok());
    }

    #[test]
    fn describes_and_detects_empty_filters() {
        assert!(JobQuery::default().is_empty());
        let q = JobQuery { state: vec!["dead".into()], group: Some("sub_1".into()), ..JobQuery::default() };
        assert!(!q.is_empty());
        assert_eq!(q.describe(), "state=dead group=sub_1");
    }

    #[test]
    fn json_body_accepts_one_state_or_many() {
        let one: JobQuery = serde_json::from_str(r#"{"state":"dead"}"#).unwrap();
        let many: JobQuery = serde_json::from_str(r#"{"state":["dead","cancelled"]}"#).unwrap();
        assert_eq!(one.state, vec!["dead"]);
        assert_eq!(many.state.len(), 2);
        assert!(serde_json::from_str::<JobQuery>(r#"{"status":"dead"}"#).is_err());
    }
}
