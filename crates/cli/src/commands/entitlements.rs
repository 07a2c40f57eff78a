//! `subsync entitlements list|show`: what each user may do right now.

use crate::commands::output::OutputOptions;
use anyhow::{Result, bail};
use clap::Subcommand;
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
    /// One user's tier, features and tier history.
    Show {
        /// The app's user id (or the Stripe customer id before checkout named the user).
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
            let Some(row) = entitlements::get(&store, &user).await? else {
                bail!("no entitlement for user `{user}`");
            };
            let history = entitlements::history(&store, &user).await?;
            if output.json {
                println!("{}", serde_json::json!({ "entitlement": row, "history": history }));
            } else {
                print_table(std::slice::from_ref(&row));
                println!("\nfeatures: {}", serde_json::to_string(&row.features)?);
                println!("\nhistory:");
                for h in history {
                    println!("  {}", serde_json::to_string(&h)?);
                }
            }
        }
    }
    Ok(())
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
