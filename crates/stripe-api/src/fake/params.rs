//! The fake's query parameters, read and refused as Stripe does.

use serde_json::{Value, json};

/// A Stripe error answer: status and the `error` object of the body.
#[derive(Debug, Clone)]
pub(super) struct FakeError {
    pub(super) status: u16,
    kind: &'static str,
    message: String,
    code: Option<&'static str>,
    param: Option<String>,
}

impl FakeError {
    /// A 400 `invalid_request_error`.
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self { status: 400, kind: "invalid_request_error", message: message.into(), code: None, param: None }
    }

    pub(super) fn with_status(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into(), code: None, param: None }
    }

    pub(super) fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub(super) fn param(mut self, param: &str) -> Self {
        self.param = Some(param.to_owned());
        self
    }

    /// Stripe's body: `{"error": {"type", "message", "code"?, "param"?}}`.
    pub(super) fn body(&self) -> Value {
        let mut error = json!({"type": self.kind, "message": self.message});
        if let Some(code) = self.code {
            error["code"] = json!(code);
        }
        if let Some(param) = &self.param {
            error["param"] = json!(param);
        }
        json!({ "error": error })
    }
}

/// The query pairs of one request, names normalized: `types[3]` (the Python SDK's
/// form) and `types[]` both become `types[]`.
pub(super) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Reads `pairs`, refusing any parameter whose base name is not in `allowed`.
    pub(super) fn new(pairs: &[(String, String)], allowed: &[&str]) -> Result<Self, FakeError> {
        let mut out = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            let base = name.split('[').next().unwrap_or_default();
            if !allowed.contains(&base) {
                return Err(FakeError::invalid(format!("Received unknown parameter: {base}"))
                    .code("parameter_unknown")
                    .param(base));
            }
            out.push((normalize(name), value.clone()));
        }
        Ok(Self { pairs: out })
    }

    /// The single value of `name`, if given.
    pub(super) fn one(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of an array parameter (`name[]`).
    pub(super) fn all(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// `limit`, `starting_after`, `ending_before`.
    pub(super) fn paging(&self) -> Result<Paging, FakeError> {
        let limit = match self.one("limit") {
            None => 10,
            Some(raw) => {
                let n: i64 =
                    raw.parse().map_err(|_| FakeError::invalid(format!("Invalid integer: {raw}")).param("limit"))?;
                if n < 1 {
                    return Err(FakeError::invalid("This value must be greater than or equal to 1.").param("limit"));
                }
                if n > 100 {
                    return Err(FakeError::invalid("This value must be less than or equal to 100.").param("limit"));
                }
                n as usize
            }
        };
        let starting_after = self.one("starting_after").map(str::to_owned);
        let ending_before = self.one("ending_before").map(str::to_owned);
        if starting_after.is_some() && ending_before.is_some() {
            return Err(FakeError::invalid(
                "You may only specify one of these parameters: ending_before, starting_after.",
            ));
        }
        Ok(Paging { limit, starting_after, ending_before })
    }

    /// `created=…` or `created[gt|gte|lt|lte]=…`.
    pub(super) fn created(&self) -> Result<Created, FakeError> {
        let mut created = Created::default();
        for (name, value) in &self.pairs {
            let slot = match name.as_str() {
                "created" => {
                    let exact = int(name, value)?;
                    created.gte = Some(exact);
                    created.lte = Some(exact);
                    continue;
                }
                "created[gt]" => &mut created.gt,
                "created[gte]" => &mut created.gte,
                "created[lt]" => &mut created.lt,
                "created[lte]" => &mut created.lte,
                _ if name.starts_with("created") => {
                    return Err(FakeError::invalid(format!("Received unknown parameter: {name}")).param(name));
                }
                _ => continue,
            };
            *slot = Some(int(name, value)?);
        }
        Ok(created)
    }

    /// `expand[]` values.
    pub(super) fn expand(&self) -> Vec<&str> {
        self.all("expand[]")
    }
}

fn int(name: &str, value: &str) -> Result<i64, FakeError> {
    value.parse().map_err(|_| FakeError::invalid(format!("Invalid integer: {value}")).param(name))
}

/// `types[0]` → `types[]`; `created[gte]` unchanged.
fn normalize(name: &str) -> String {
    match name.split_once('[') {
        Some((base, rest)) if rest.strip_suffix(']').is_some_and(|i| i.chars().all(|c| c.is_ascii_digit())) => {
            format!("{base}[]")
        }
        _ => name.to_owned(),
    }
}

/// Stripe's cursor paging.
#[derive(Debug, Clone)]
pub(super) struct Paging {
    pub(super) limit: usize,
    pub(super) starting_after: Option<String>,
    pub(super) ending_before: Option<String>,
}

/// A `created` range (every bound optional).
#[derive(Debug, Clone, Default)]
pub(super) struct Created {
    gt: Option<i64>,
    gte: Option<i64>,
    lt: Option<i64>,
    lte: Option<i64>,
}

impl Created {
    pub(super) fn accepts(&self, t: i64) -> bool {
        self.gt.is_none_or(|b| t > b)
            && self.gte.is_none_or(|b| t >= b)
            && self.lt.is_none_or(|b| t < b)
            && self.lte.is_none_or(|b| t <= b)
    }
}

/// Stripe's event `type` filter: `*` matches any run of characters (`customer.subscription.*`).
pub(super) fn type_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            let Some(rest) = name.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len()).any(|i| rest.is_char_boundary(i) && type_matches(tail, &rest[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Result<Params, FakeError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Params::new(&pairs, &["limit", "starting_after", "ending_before", "created", "types", "expand"])
    }

    #[test]
    fn array_forms_and_unknown_parameters() {
        let p = params(&[("types[0]", "a"), ("types[1]", "b"), ("types[]", "c"), ("expand[0]", "data.customer")])
            .expect("valid");
        assert_eq!(p.all("types[]"), ["a", "b", "c"]);
        assert_eq!(p.expand(), ["data.customer"]);
        let err = params(&[("colour", "red")]).err().expect("unknown");
        assert_eq!(err.body()["error"]["message"], "Received unknown parameter: colour");
    }

    #[test]
    fn limit_and_cursors() {
        assert_eq!(params(&[]).and_then(|p| p.paging()).expect("default").limit, 10);
        assert_eq!(params(&[("limit", "100")]).and_then(|p| p.paging()).expect("max").limit, 100);
        for bad in ["0", "101", "ten", "-1"] {
            let err = params(&[("limit", bad)]).and_then(|p| p.paging()).expect_err(bad);
            assert_eq!((err.status, err.body()["error"]["param"].as_str()), (400, Some("limit")), "{bad}");
        }
        let both = params(&[("starting_after", "a"), ("ending_before", "b")]).and_then(|p| p.paging());
        assert!(both.is_err());
    }

    #[test]
    fn created_ranges() {
        let c = params(&[("created[gte]", "10"), ("created[lt]", "20")]).and_then(|p| p.created()).expect("range");
        assert!(!c.accepts(9) && c.accepts(10) && c.accepts(19) && !c.accepts(20));
        let c = params(&[("created[gt]", "10"), ("created[lte]", "20")]).and_then(|p| p.created()).expect("range");
        assert!(!c.accepts(10) && c.accepts(11) && c.accepts(20) && !c.accepts(21));
        let c = params(&[("created", "15")]).and_then(|p| p.created()).expect("exact");
        assert!(!c.accepts(14) && c.accepts(15) && !c.accepts(16));
        assert!(params(&[("created[gte]", "x")]).and_then(|p| p.created()).is_err());
        assert!(params(&[("created[after]", "1")]).and_then(|p| p.created()).is_err());
    }

    #[test]
    fn wildcards() {
        assert!(type_matches("customer.subscription.*", "customer.subscription.updated"));
        assert!(!type_matches("customer.subscription.*", "customer.updated"));
        assert!(type_matches("*.created", "invoice.created"));
        assert!(type_matches("*", "anything"));
        assert!(type_matches("invoice.paid", "invoice.paid"));
        assert!(!type_matches("invoice.paid", "invoice.paid2"));
    }
}
