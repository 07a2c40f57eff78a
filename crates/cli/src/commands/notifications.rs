//! `subsync notifications`: the change notifications to the application, newest first (the
//! same listing as `GET /api/notifications` and the dashboard's Notifications page). Failed
//! and dead deliveries are jobs on queue `notify`: `subsync jobs list --queue notify --state
//! dead`, then `subsync jobs retry`.
//!
//! ```text
//! subsync notifications --undelivered
//! subsync notifications --user usr_42 --json
//! ```

use std::io::Write;

use chrono::Utc;
use subsync_admin::notifications::{self, DEFAULT_LIMIT, NotificationsQuery};
use subsync_queue::Store;

use super::output::{CliError, OutputOptions};
use super::table::{Table, clean, dash, time, truncate, write_json};

/// `notifications` arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Only this user's changes.
    #[arg(long, value_name = "USER_ID")]
    pub user: Option<String>,
    /// Only changes not delivered yet.
    #[arg(long)]
    pub undelivered: bool,
    /// Rows to show (1-1000).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT)]
    pub limit: u32,
}

/// Lists the outbox with its totals.
pub async fn run(store: &Store, args: Args, out: &mut impl Write, opts: OutputOptions) -> Result<(), CliError> {
    let mut pairs = vec![("limit".to_owned(), args.limit.to_string())];
    if let Some(user) = args.user {
        pairs.push(("user".to_owned(), user));
    }
    if args.undelivered {
        pairs.push(("undelivered".to_owned(), "1".to_owned()));
    }
    let query = NotificationsQuery::from_pairs(&pairs)?;
    let view = notifications::view(store, &query, Utc::now()).await?;
    if opts.json {
        return write_json(out, &view);
    }
    let s = &view.stats;
    writeln!(
        out,
        "{} undelivered ({} failing, oldest waiting {:.1} s), {} delivered",
        s.undelivered, s.failing, view.lag_seconds, s.delivered
    )?;
    if view.notifications.is_empty() {
        writeln!(out, "no notifications match")?;
        return Ok(());
    }
    let mut t = Table::new(&["WRITTEN (UTC)", "CHANGE", "USER", "VERSION", "DELIVERED", "ATTEMPTS", "LAST ERROR"]);
    for n in &view.notifications {
        t.row(vec![
            time(Some(n.created_at)),
            n.change_id.clone(),
            clean(&n.user_id, false),
            n.version.to_string(),
            time(n.delivered_at),
            n.attempts.to_string(),
            dash(&truncate(n.last_error.as_deref().unwrap_or(""), 60)),
        ]);
    }
    t.write(out)?;
    Ok(())
}
