//! The same-run reference for the drain figure: graphile-worker (the queue the issue's
//! "10 times" aim is stated against) on the same workload and the same PostgreSQL, run by
//! `graphile/drain.mjs` under Node.js. Installed from the npm registry on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::queue::Workload;

/// What graphile-worker did on the workload.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Jobs per second, first job start to last job end.
    pub drain: f64,
    /// Upserts counted in its effect table (must equal the job count).
    pub effects: u64,
    /// Times two jobs of one named queue ran at once (must be 0).
    pub overlaps: u64,
}

/// `crates/bench/graphile`, found from the source tree this binary was built from.
fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("graphile")
}

/// Version pinned in `graphile/package.json`, for the report.
pub fn version() -> Result<String> {
    let manifest = std::fs::read_to_string(script_dir().join("package.json")).context("graphile/package.json")?;
    let json: serde_json::Value = serde_json::from_str(&manifest)?;
    Ok(json["dependencies"]["graphile-worker"].as_str().unwrap_or("?").to_string())
}

/// Runs graphile-worker on `w` against `postgres_url` (a scratch schema, dropped after).
pub fn measure(postgres_url: &str, w: Workload) -> Result<Figures> {
    let dir = script_dir();
    if !dir.join("node_modules/graphile-worker").exists() {
        eprintln!("[graphile-worker] npm ci…");
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .context("running npm (Node.js and npm are needed for --graphile)")?;
        if !status.success() {
            bail!("npm ci in {} failed", dir.display());
        }
    }
    eprintln!("[PostgreSQL] graphile-worker on the same workload…");
    let output = Command::new("node")
        .arg("drain.mjs")
        .args(["--url", postgres_url])
        .args(["--jobs", &w.jobs.to_string(), "--groups", &w.groups.to_string()])
        .args(["--concurrency", &w.concurrency.to_string()])
        .current_dir(&dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running node (Node.js is needed for --graphile)")?;
    if !output.status.success() {
        bail!("graphile/drain.mjs failed ({})", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let json: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("graphile/drain.mjs printed `{line}`, not its figures"))?;
    let (Some(drain), Some(effects), Some(overlaps)) =
        (json["drain"].as_f64(), json["effects"].as_u64(), json["overlaps"].as_u64())
    else {
        bail!("graphile/drain.mjs printed `{line}`, not its figures");
    };
    let figures = Figures { drain, effects, overlaps };
    if figures.effects != w.jobs || figures.overlaps != 0 {
        bail!("graphile-worker run is not valid: {figures:?} for {} jobs", w.jobs);
    }
    Ok(figures)
}
