//! # subsync-notify
//!
//! Delivers the outbox's entitlement changes (`subsync-outbox`) to the application: a POST
//! of the stored body to `--notify-url`, signed per the Standard Webhooks specification
//! ([`signature`]: `webhook-id` = the change id, `webhook-timestamp`, `webhook-signature:
//! v1,<base64 HMAC-SHA256>` with a `whsec_` secret). A 2xx answer is delivered; anything
//! else, a timeout or a redirect (never followed) is a failure, retried with the queue's
//! backoff until the change is older than `give_up_after` (3 days by default), then the job
//! is `dead` for an operator (`subsync jobs retry`, the dashboard).
//!
//! Order per user: delivery jobs are grouped by user, so one runs at a time per user; and
//! each job sends its user's *oldest* undelivered change first, up to its own. A job whose
//! change failed waits in backoff without blocking its group, so the next job of that user
//! runs — and sends the failed change first again. No change overtakes an earlier
//! undelivered one of the same user ([`deliver`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
pub mod deliver;
mod runtime;
pub mod signature;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{ConfigError, NotifyConfig};
pub use deliver::{Deliverer, DeliveryObserver};
pub use runtime::run;
pub use signature::{SecretError, WebhookSecret};
