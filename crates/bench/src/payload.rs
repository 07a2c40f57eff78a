//! The event bodies the benchmarks send. Stripe's subscription events carry the whole
//! subscription object, pretty-printed, and run to 5–8 KB; figures measured with a 600-byte
//! body flatter every stage that copies, parses, hashes or stores the body. So the realistic
//! body is the default and the small one stays as a second row, for comparison with older
//! reports.

/// A `customer.subscription.updated` as Stripe sends it (API 2025-03-31.basil): the whole
/// subscription object in Stripe's own field order and indentation, derived from Stripe's
/// public example object, with `@EVENT@`, `@SUB@`, `@NOW@`, `@START@` and `@END@` to fill.
const REALISTIC: &str = include_str!("payload/subscription_updated.json");

/// Which body the load generators send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Payload {
    /// The whole subscription object as Stripe sends it (about 5.5 KB).
    #[default]
    Realistic,
    /// Only the fields the worker reads (about 600 bytes), as in earlier reports.
    Small,
}

impl Payload {
    /// Name for a report row.
    pub fn label(self) -> &'static str {
        match self {
            Payload::Realistic => "5.5 KB",
            Payload::Small => "600 B",
        }
    }

    /// A signed-ready `customer.subscription.updated` body for `subscription`: active, one
    /// `basic_monthly` item, current period ending in 30 days.
    pub fn body(self, event_id: &str, subscription: &str) -> Vec<u8> {
        self.render(event_id, subscription, chrono::Utc::now().timestamp())
    }

    fn render(self, event_id: &str, subscription: &str, now: i64) -> Vec<u8> {
        let end = now + 30 * 86400;
        match self {
            Payload::Realistic => REALISTIC
                .replace("@EVENT@", event_id)
                .replace("@SUB@", subscription)
                .replace("@NOW@", &now.to_string())
                .replace("@START@", &(now - 86400).to_string())
                .replace("@END@", &end.to_string())
                .into_bytes(),
            Payload::Small => format!(
                r#"{{"id":"{event_id}","object":"event","api_version":"2025-03-31.basil","created":{now},"livemode":false,"type":"customer.subscription.updated","data":{{"object":{{"id":"{subscription}","object":"subscription","customer":"cus_{subscription}","status":"active","cancel_at_period_end":false,"metadata":{{}},"items":{{"object":"list","data":[{{"id":"si_load","object":"subscription_item","current_period_end":{end},"price":{{"id":"price_basic","object":"price","lookup_key":"basic_monthly"}}}}]}}}}}},"pending_webhooks":1,"request":{{"id":null,"idempotency_key":null}}}}"#
            )
            .into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Payload;
    use subsync_stripe::{Envelope, Subscription};

    /// Both bodies must say the same thing to the worker, or the rows would not compare.
    #[test]
    fn both_bodies_say_the_same_to_the_worker() {
        let mut seen = Vec::new();
        for payload in [Payload::Realistic, Payload::Small] {
            let body = payload.render("evt_0123456789abcdef0123456789abcdef_42", "sub_load_1234", 1_764_633_600);
            let envelope = Envelope::parse(&body).expect("parses");
            assert_eq!(envelope.event_type, "customer.subscription.updated", "{payload:?}");
            let sub: Subscription = envelope.object().expect("a subscription");
            let prices: Vec<_> = sub.prices().map(|p| (p.id.clone(), p.lookup_key.clone())).collect();
            let what = (
                sub.id.clone(),
                sub.customer_id().map(str::to_owned),
                sub.status.clone(),
                sub.cancel_at_period_end,
                sub.current_period_end(),
                prices,
                sub.metadata.clone(),
            );
            seen.push((body.len(), what));
        }
        let (realistic, small) = (&seen[0], &seen[1]);
        assert!((5_000..6_500).contains(&realistic.0), "realistic body is {} bytes", realistic.0);
        assert!(small.0 < 800, "small body is {} bytes", small.0);
        assert_eq!(realistic.1, small.1);
    }
}
