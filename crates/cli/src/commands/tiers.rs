//! `subsync tiers check|unmapped`: is a tier file valid (offline, before a deploy), and which
//! prices that Stripe sends does the tier file not map yet.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use subsync_domain::{FeatureSource, TierConfig, UnmappedPolicy};
use subsync_worker::entitlements;

use crate::commands::output::OutputOptions;
use crate::options::Global;

/// Tier file commands.
#[derive(Debug, Clone, Subcommand)]
pub enum TiersCommand {
    /// Validate a tier file without touching any database; prints what it defines. Exits 1
    /// with the file and line of the first problem.
    Check {
        /// The tier file (TOML); the built-in default when omitted.
        file: Option<PathBuf>,
    },
    /// Prices seen on synced subscriptions that the tier file does not map, most frequent
    /// first, with an example event and the closest mapped lookup key.
    Unmapped {
        /// Only events synced at or after: RFC 3339 or an age (15m, 2h, 7d).
        #[arg(long, value_name = "TIME", default_value = "30d")]
        since: String,
        /// The tier file to suggest mapped keys from (as the worker's `--tiers`).
        #[arg(long, env = "SUBSYNC_TIERS", value_name = "FILE")]
        tiers: Option<PathBuf>,
    },
}

fn load(file: Option<&PathBuf>) -> Result<TierConfig> {
    match file {
        // The error names the file and line itself.
        Some(path) => Ok(TierConfig::load(path)?),
        None => Ok(TierConfig::default_config()),
    }
}

/// Runs a tiers command.
pub async fn run(global: &Global, cmd: TiersCommand, output: &OutputOptions) -> Result<()> {
    match cmd {
        TiersCommand::Check { file } => check(file.as_ref(), output),
        TiersCommand::Unmapped { since, tiers } => {
            let tiers = load(tiers.as_ref())?;
            let since = subsync_admin::query::parse_time(&since, chrono::Utc::now())?;
            let store = global.connect_migrated().await?;
            let rows = entitlements::unmapped_prices(&store, since).await?;
            let suggestion = |key: Option<&str>| key.and_then(|k| tiers.closest_lookup_key(k)).map(str::to_owned);
            if output.json {
                let rows: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|r| {
                        let mut v = serde_json::to_value(r).unwrap_or_default();
                        v["closest_mapped_key"] = serde_json::json!(suggestion(r.lookup_key.as_deref()));
                        v
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!("no unmapped prices seen since {}", since.format("%Y-%m-%d %H:%M UTC"));
            } else {
                println!(
                    "{:<28} {:<24} {:>6} {:>5} {:<8} {:<20} {:<30} closest mapped key",
                    "price", "lookup_key", "events", "subs", "effect", "last seen", "example event"
                );
                for r in &rows {
                    println!(
                        "{:<28} {:<24} {:>6} {:>5} {:<8} {:<20} {:<30} {}",
                        r.price_id,
                        r.lookup_key.as_deref().unwrap_or("-"),
                        r.events,
                        r.subscriptions,
                        r.effect,
                        r.last_seen.format("%Y-%m-%d %H:%M:%S"),
                        r.example_event_id,
                        suggestion(r.lookup_key.as_deref()).unwrap_or_else(|| "-".into())
                    );
                }
            }
            Ok(())
        }
    }
}

fn check(file: Option<&PathBuf>, output: &OutputOptions) -> Result<()> {
    let cfg = load(file)?;
    let name = file.map_or_else(|| "the built-in tier file".to_owned(), |p| p.display().to_string());
    let tiers: Vec<&str> = cfg.tiers().iter().map(|t| t.as_str()).collect();
    let addons: Vec<&str> = cfg.addons().keys().map(String::as_str).collect();
    let unmapped = match cfg.unmapped_policy() {
        UnmappedPolicy::Dead => "dead",
        UnmappedPolicy::Free => "free",
    };
    let source = match cfg.feature_source() {
        FeatureSource::Prices => "prices",
        FeatureSource::StripeEntitlements => "stripe_entitlements",
        FeatureSource::Both => "both",
    };
    if output.json {
        println!(
            "{}",
            serde_json::json!({ "file": name, "valid": true, "tiers": tiers, "addons": addons, "unmapped": unmapped, "source": source })
        );
    } else {
        println!("{name} is valid");
        println!("tiers (lowest first): {}", tiers.join(", "));
        println!("add-ons: {}", if addons.is_empty() { "-".to_owned() } else { addons.join(", ") });
        println!("a subscription with no mapped price: {unmapped}");
        println!("features come from: {source}");
    }
    Ok(())
}
