//! `subsync entitlements list|show`: what each user may do right now.

use crate::commands::output::OutputOptions;
use anyhow::{Result, bail};
use clap::Subcommand;
use subsync_worker::SupportView;
use subsync_worker::entitlements::{self, EntitlementRow};

use crate::options::{Bounded, Global};

/// Entitlement commands.
#[derive(Debug, Clone, Subcommand)]
pub enum EntitlementsCommand {
    /// Every user's current tier, most recently changed first.
    List {
        /// Rows to show (1..=1000).
        #[arg(long, default_value_t = 100, value_parser = Bounded::<u32>::between(1, 1000))]
        limit: u32,
        /// Rows to skip.
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// One user's whole story: tier and features, subscriptions, tier history, events and
    /// what became of them.
    Show {
        /// The app's user id, a Stripe customer id (`cus_…`) or a subscription id (`sub_…`).
        user: String,
    },
}

/// Runs an entitlements command.
pub async fn run(global: &Global, cmd: EntitlementsCommand, output: &OutputOptions) -> Result<()> {
    let store = global.connect_migrated().await?;
    match cmd {
        EntitlementsCommand::List { limit, offset } => {
            let rows = entitlements::list(&store, limit, offset).await?;
            if output.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print_table(&rows);
            }
        }
        EntitlementsCommand::Show { user } => {
            let Some(view) = subsync_worker::support(&store, &user, chrono::Utc::now()).await? else {
                bail!("no user, customer or subscription `{user}` is known to subsync (such a user has the free tier)");
            };
            if output.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_support(&view);
            }
        }
    }
    Ok(())
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "-".into())
}

/// The support view as text: the questions support asks, in the order they ask them.
fn print_support(v: &SupportView) {
    let by = match v.found_by {
        "user_id" => String::new(),
        other => format!(" (found by {})", other.replace('_', " ")),
    };
    println!("user {}{by}", v.user_id);
    match &v.entitlement {
        Some(e) => {
            let lapsed = if e.lapsed { format!(", lapsed from {}", e.stored_tier) } else { String::new() };
            println!(
                "tier {} ({}{lapsed}) from {}, status {}, access until {}, period end {}",
                e.tier,
                e.reason,
                e.subscription_id,
                e.status.as_deref().unwrap_or("-"),
                time(e.access_until),
                time(e.period_end)
            );
        }
        None => println!("tier free (no subscription of theirs grants anything)"),
    }
    println!("\nfeatures:");
    let width = v.features.iter().map(|f| f.feature.len()).max().unwrap_or(0);
    for f in &v.features {
        println!("  {} {:<width$}  {}", if f.allowed { "✓" } else { "✗" }, f.feature, f.value);
    }
    println!("\nsubscriptions:");
    for s in &v.subscriptions {
        let cancels = if s.cancel_at_period_end { ", cancels at period end" } else { "" };
        let past_due = s.past_due_since.map(|t| format!(", past due since {}", time(Some(t)))).unwrap_or_default();
        println!(
            "  {}  {}  {}  period end {}{cancels}{past_due}  (last event {})",
            s.subscription_id,
            s.status.as_deref().unwrap_or("-"),
            s.prices.join(", "),
            time(s.current_period_end),
            s.last_event_id
        );
    }
    println!("\ntier history:");
    for h in &v.history {
        println!(
            "  {}  {} → {}  ({} on {})",
            time(Some(h.at)),
            h.from_tier,
            h.to_tier,
            h.cause_event_id,
            h.subscription_id
        );
    }
    println!("\nevents, newest first:");
    for e in &v.events {
        let reason = e.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        println!(
            "  {}  {}  {}  {}{reason}",
            time(Some(e.at)),
            e.event_id,
            e.event_type.as_deref().unwrap_or("?"),
            e.outcome
        );
    }
}

/// A readable table of entitlement rows.
pub fn print_table(rows: &[EntitlementRow]) {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "-".into())
    };
    let columns = ["USER", "TIER", "STATUS", "SUBSCRIPTION", "PERIOD END", "ACCESS UNTIL", "REASON", "UPDATED"];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let tier = if r.lapsed { format!("{} (was {})", r.tier, r.stored_tier) } else { r.tier.clone() };
            vec![
                r.user_id.clone(),
                tier,
                r.status.clone().unwrap_or_else(|| "-".into()),
                r.subscription_id.clone(),
                time(r.period_end),
                time(r.access_until),
                r.reason.clone(),
                time(Some(r.updated_at)),
            ]
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| cells.iter().map(|row| row[i].len()).chain([c.len()]).max().unwrap_or(0))
        .collect();
    let line = |items: Vec<String>| {
        items.iter().enumerate().map(|(i, s)| format!("{s:<w$}", w = widths[i])).collect::<Vec<_>>().join("  ")
    };
    println!("{}", line(columns.iter().map(|c| c.to_string()).collect()));
    for row in cells {
        println!("{}", line(row));
    }
    if rows.is_empty() {
        println!("(no entitlements yet)");
    }
}
