//! `subsync migrate`: apply the schema and exit (the one-shot step of a deployment).

use anyhow::{Context, Result};

use crate::options::Global;

/// Runs every pending migration.
pub async fn run(global: &Global) -> Result<()> {
    let store = global.connect().await?;
    store.migrate().await.context("applying database migrations")?;
    println!("migrations applied ({} database)", store.backend().as_str());
    Ok(())
}
