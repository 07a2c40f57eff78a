//! `subsync backup <FILE>`: a consistent hot copy of the embedded SQLite database, safe to take
//! while `subsync serve` runs; checked by opening the copy before it is reported done.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;

use crate::commands::output::OutputOptions;
use crate::options::Global;

/// Flags of `subsync backup`.
#[derive(Debug, Clone, ClapArgs)]
pub struct Args {
    /// Where to write the copy; must not exist yet.
    pub file: PathBuf,
}

/// Takes the backup.
pub async fn run(global: &Global, args: Args, output: &OutputOptions) -> Result<()> {
    let store = global.connect().await?;
    let summary = store.backup_to(&args.file).await.with_context(|| format!("backup to {}", args.file.display()))?;
    if output.json {
        println!(
            "{}",
            serde_json::json!({
                "file": args.file.display().to_string(),
                "bytes": summary.bytes,
                "jobs": summary.jobs,
                "migrations": summary.migrations,
                "integrity": "ok",
            })
        );
    } else {
        println!(
            "backup written to {}: {} bytes, {} jobs, {} migrations; the copy opens and passes its integrity check",
            args.file.display(),
            summary.bytes,
            summary.jobs,
            summary.migrations
        );
    }
    Ok(())
}
