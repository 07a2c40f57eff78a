//! Stripe's API for the processes that need it — `serve`, `worker`, `reconcile`, `backfill`;
//! never the intake, which only verifies what Stripe sends: the flags, the client, and the
//! worker's fetcher over it.

use std::ffi::OsStr;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::builder::TypedValueParser;
use clap::{Arg, Args};
use futures::future::BoxFuture;
use subsync_stripe_api::{ApiConfig, ApiError, ApiKey, DEFAULT_BASE, StripeApi};
use subsync_worker::{FetchError, FetchedObject, RefetchMode, SubscriptionFetcher};

use crate::options::{Bounded, flag_name, invalid};

/// Flags for Stripe's API.
#[derive(Debug, Clone, Args)]
pub struct StripeApiArgs {
    /// Stripe API key for catch-up, backfill and refetching. A restricted key with read
    /// access is enough (see docs/stripe-api.md); without one those stay off.
    #[arg(long, env = "STRIPE_API_KEY", hide_env_values = true, value_parser = KeyArg)]
    pub stripe_api_key: Option<ApiKey>,
    /// Stripe's API address (tests point it at a local server).
    #[arg(long, env = "STRIPE_API_BASE", default_value = DEFAULT_BASE)]
    pub stripe_api_base: String,
    /// Most Stripe API requests per second from this process (Stripe allows 100/s in live mode).
    #[arg(
        long, env = "SUBSYNC_STRIPE_RATE_LIMIT", default_value_t = 20,
        value_parser = Bounded::<u32>::between(1, 100).unit(" requests per second"),
    )]
    pub stripe_rate_limit: u32,
}

impl StripeApiArgs {
    /// The client, or `None` without a key. A bad base address is refused here, at start.
    pub fn client(&self) -> Result<Option<StripeApi>> {
        let Some(key) = self.stripe_api_key.clone() else { return Ok(None) };
        let mut config = ApiConfig::new(key);
        config.base = self.stripe_api_base.trim_end_matches('/').to_owned();
        config.requests_per_second = self.stripe_rate_limit;
        config.validate().map_err(|e| anyhow::anyhow!("--stripe-api-base (STRIPE_API_BASE): {e}"))?;
        Ok(Some(StripeApi::new(config)?))
    }

    /// The client for a command that cannot work without one.
    pub fn require(&self, what: &str) -> Result<StripeApi> {
        match self.client()? {
            Some(api) => Ok(api),
            None => bail!(
                "{what} reads Stripe's API: set STRIPE_API_KEY (or --stripe-api-key) to a restricted key with \
                 read access to Events, Subscriptions, Customers and Checkout Sessions (docs/stripe-api.md)"
            ),
        }
    }
}

/// The `--stripe-api-key` parser: `sk_…` or `rk_…`, the message never showing the key.
#[derive(Debug, Clone, Copy)]
pub struct KeyArg;

impl TypedValueParser for KeyArg {
    type Value = ApiKey;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&Arg>, value: &OsStr) -> Result<ApiKey, clap::Error> {
        let text = value.to_str().ok_or_else(|| invalid(cmd, format!("{} is not UTF-8", flag_name(arg))))?;
        text.trim().parse::<ApiKey>().map_err(|e| invalid(cmd, format!("{}: {e}", flag_name(arg))))
    }
}

/// `--refetch`: when the worker asks Stripe instead of trusting an event's copy.
#[derive(Debug, Clone, Copy)]
pub struct RefetchArg;

impl TypedValueParser for RefetchArg {
    type Value = RefetchMode;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&Arg>, value: &OsStr) -> Result<RefetchMode, clap::Error> {
        let text = value.to_string_lossy();
        text.trim().parse::<RefetchMode>().map_err(|e| invalid(cmd, format!("{}: {e}", flag_name(arg))))
    }
}

/// The worker's fetcher: `GET /v1/subscriptions/{id}` (customer expanded) through the client.
pub struct Fetcher(pub StripeApi);

impl Fetcher {
    /// As the worker takes it.
    pub fn shared(api: StripeApi) -> Arc<dyn SubscriptionFetcher> {
        Arc::new(Fetcher(api))
    }
}

impl SubscriptionFetcher for Fetcher {
    fn subscription<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<FetchedObject, FetchError>> {
        Box::pin(async move {
            let fetched = self.0.subscription(id).await.map_err(|e| {
                if e.is_retryable() {
                    FetchError::Unavailable(e.to_string())
                } else {
                    FetchError::Refused(e.to_string())
                }
            })?;
            let object = serde_json::from_str(fetched.body.get())
                .map_err(|e| FetchError::Refused(format!("Stripe answered with something that is not JSON: {e}")))?;
            Ok(FetchedObject { object, date: fetched.date })
        })
    }
}

/// Whether an API error is worth a clear operator hint (a refused key).
pub fn hint(e: &ApiError) -> &'static str {
    match e {
        ApiError::Unauthorized { .. } => {
            " (check STRIPE_API_KEY: a restricted key needs read access to Events, Subscriptions, Customers and Checkout Sessions)"
        }
        _ => "",
    }
}
