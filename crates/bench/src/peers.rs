//! Same-run references for the drain figure: open-source PostgreSQL job queues on the same
//! workload and the same PostgreSQL, each driven by a `drain.mjs` under Node.js in its own
//! folder beside this crate, pinned by its `package-lock.json` and installed from the npm
//! registry on first use. Each script prints one JSON line of figures; a run that lost an
//! effect or ran two jobs of one group at once is refused, not reported.
//!
//! - graphile-worker: named queues (one job at a time per queue), the queue the issue's
//!   "10 times" aim is stated against.
//! - pg-boss: the `key_strict_fifo` policy (one active job per key, FIFO within the key),
//!   the closest peer to subsync's per-subscription serialization.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::queue::Workload;

/// One peer queue and where its driver lives.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Name in the report, e.g. `graphile-worker`.
    pub name: &'static str,
    /// npm package whose pinned version the report prints.
    pub package: &'static str,
    /// Folder under `crates/bench` holding `drain.mjs`, `package.json` and its lock.
    pub dir: &'static str,
}

/// Every peer the report can run, in report order.
pub const PEERS: [Peer; 2] = [
    Peer { name: "graphile-worker", package: "graphile-worker", dir: "graphile" },
    Peer { name: "pg-boss", package: "pg-boss", dir: "pgboss" },
];

/// What a peer did on the workload.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Jobs per second, first job start to last job end.
    pub drain: f64,
    /// Upserts counted in its effect table (must equal the job count).
    pub effects: u64,
    /// Times two jobs of one group ran at once (must be 0).
    pub overlaps: u64,
}

impl Peer {
    /// The driver's folder, found from the source tree this binary was built from.
    fn script_dir(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(self.dir)
    }

    /// Version pinned in the driver's `package.json`, for the report.
    pub fn version(&self) -> Result<String> {
        let path = self.script_dir().join("package.json");
        let manifest = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        let json: serde_json::Value = serde_json::from_str(&manifest)?;
        Ok(json["dependencies"][self.package].as_str().unwrap_or("?").to_string())
    }

    /// Runs the peer on `w` against `postgres_url` (its scripts use a scratch schema and
    /// drop it after).
    pub fn measure(&self, postgres_url: &str, w: Workload) -> Result<Figures> {
        let dir = self.script_dir();
        if !dir.join("node_modules").join(self.package).exists() {
            eprintln!("[{}] npm ci…", self.name);
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--silent"])
                .current_dir(&dir)
                .status()
                .context("running npm (Node.js and npm are needed for --peers)")?;
            if !status.success() {
                bail!("npm ci in {} failed", dir.display());
            }
        }
        eprintln!("[PostgreSQL] {} on the same workload…", self.name);
        let output = Command::new("node")
            .arg("drain.mjs")
            .args(["--url", postgres_url])
            .args(["--jobs", &w.jobs.to_string(), "--groups", &w.groups.to_string()])
            .args(["--concurrency", &w.concurrency.to_string()])
            .current_dir(&dir)
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("running node (Node.js is needed for --peers)")?;
        if !output.status.success() {
            bail!("{}/drain.mjs failed ({})", self.dir, output.status);
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let figures = parse_figures(stdout.lines().last().unwrap_or_default())
            .with_context(|| format!("{}/drain.mjs did not print its figures", self.dir))?;
        if figures.effects != w.jobs || figures.overlaps != 0 {
            bail!("{} run is not valid: {figures:?} for {} jobs", self.name, w.jobs);
        }
        Ok(figures)
    }
}

/// Reads a driver's last stdout line: `{"drain": …, "effects": …, "overlaps": …}`.
fn parse_figures(line: &str) -> Result<Figures> {
    let json: serde_json::Value = serde_json::from_str(line).with_context(|| format!("`{line}` is not JSON"))?;
    let (Some(drain), Some(effects), Some(overlaps)) =
        (json["drain"].as_f64(), json["effects"].as_u64(), json["overlaps"].as_u64())
    else {
        bail!("`{line}` lacks drain, effects or overlaps");
    };
    Ok(Figures { drain, effects, overlaps })
}

/// Looks peers up by name for `--peers`.
pub fn by_names(names: &[String]) -> Result<Vec<Peer>> {
    names
        .iter()
        .map(|name| {
            PEERS.iter().copied().find(|p| p.name == name || p.dir == name).with_context(|| {
                let known: Vec<_> = PEERS.iter().map(|p| p.name).collect();
                format!("unknown peer `{name}` (known: {})", known.join(", "))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_read_from_the_last_line_and_incomplete_ones_refused() {
        let f = parse_figures(r#"{"drain": 512.5, "seconds": 39.0, "jobs": 20000, "effects": 20000, "overlaps": 0}"#)
            .expect("figures");
        assert_eq!((f.drain, f.effects, f.overlaps), (512.5, 20_000, 0));
        assert!(parse_figures(r#"{"drain": 512.5}"#).is_err());
        assert!(parse_figures("npm WARN something").is_err());
    }

    #[test]
    fn peers_are_found_by_name_or_folder_and_every_pin_is_readable() {
        let found = by_names(&["graphile-worker".into(), "pgboss".into()]).expect("known");
        assert_eq!(found.iter().map(|p| p.name).collect::<Vec<_>>(), ["graphile-worker", "pg-boss"]);
        assert!(by_names(&["sidekiq".into()]).unwrap_err().to_string().contains("known: graphile-worker, pg-boss"));
        for peer in PEERS {
            let version = peer.version().expect("package.json");
            assert!(version.chars().next().is_some_and(|c| c.is_ascii_digit()), "{}: {version}", peer.name);
        }
    }
}
