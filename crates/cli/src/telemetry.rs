//! Structured logs via tracing: text for terminals, JSON for pipelines.

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

use crate::options::Global;

/// Installs the global subscriber.
pub fn init(global: &Global) -> Result<()> {
    let filter = EnvFilter::try_new(&global.log).with_context(|| format!("invalid log filter `{}`", global.log))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if global.log_format == "json" { builder.json().try_init() } else { builder.try_init() }
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
