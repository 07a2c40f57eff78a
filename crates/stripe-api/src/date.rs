//! Stripe's clock: the `Date` response header.

/// Parses an HTTP `Date` header (`Tue, 01 Dec 2026 18:29:48 GMT`, RFC 9110's IMF-fixdate,
/// a subset of RFC 2822) to unix seconds. Why it matters: the `Date` of a fetch is when
/// Stripe says the object was as returned, the clock callers order fetched snapshots by.
pub(crate) fn parse_http_date(value: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc2822(value.trim()).ok().map(|d| d.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_imf_fixdate() {
        assert_eq!(parse_http_date("Tue, 01 Dec 2026 18:29:48 GMT"), Some(1_796_149_788));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date(" Sun, 06 Nov 1994 08:49:37 GMT "), Some(784_111_777));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 +0100"), Some(784_108_177));
    }

    #[test]
    fn refuses_garbage() {
        for bad in ["", "yesterday", "1700000000", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun, 32 Nov 1994 08:49:37 GMT"] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
