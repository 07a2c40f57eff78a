//! `subsync-bench report`: every figure in one run, on SQLite and PostgreSQL, as ratios to
//! the same database's raw insert ceiling measured in the same run; printed as markdown and
//! written to a docs file with the machine's cores and database versions.

use std::path::PathBuf;

use anyhow::{Context, Result};
use subsync_queue::{Dialect, QueueConfig};

use crate::db::BenchDb;
use crate::{e2e, graphile, intake, queue, read};

/// Options of `subsync-bench report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// PostgreSQL server (a scratch schema is created and dropped).
    #[arg(long, env = "SUBSYNC_BENCH_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// Also drain the same workload with graphile-worker (Node.js; installed from npm into
    /// crates/bench/graphile on first use) on the same PostgreSQL, for a same-run ratio.
    #[arg(long)]
    graphile: bool,
    /// Where to write the markdown report.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
}

struct Row {
    version: String,
    q: queue::Figures,
    i: intake::Figures,
    e: e2e::Figures,
    r: read::Figures,
}

pub async fn run(args: Args) -> Result<()> {
    // The workload: 20,000 jobs in 2,000 serialized groups (the graphile-worker reference).
    let workload = queue::Workload { jobs: 20_000, groups: 2_000, concurrency: 16, duplicate_percent: 10 };
    let mut rows = Vec::new();
    let mut reference = None;
    for postgres in [false, true] {
        let open = || async {
            if postgres {
                BenchDb::postgres(&args.postgres, QueueConfig::default()).await
            } else {
                BenchDb::sqlite(QueueConfig::default()).await
            }
        };
        let db = open().await?;
        let version = version(&db).await?;
        let q = queue::measure(&db, workload).await?;
        if postgres && args.graphile {
            // Right after our own drain, on the same server: the two are compared directly.
            let url = args.postgres.clone();
            reference = Some(tokio::task::spawn_blocking(move || graphile::measure(&url, workload)).await??);
        }
        let i = intake::measure(&db, 10_000, 16, Default::default()).await?;
        db.close().await;
        // A fresh database: the intake run left 10,000 jobs that would skew the worker.
        let db = open().await?;
        let e = e2e::measure(&db, 100, 3_000, 16, subsync_worker::GroupCommit::default_for(db.store.backend())).await?;
        db.close().await;
        let db = open().await?;
        let r = read::measure(&db, 2_000, 40_000, 16).await?;
        db.close().await;
        rows.push(Row { version, q, i, e, r });
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mut md = String::new();
    md.push_str(&format!(
        "Run {} on {cores} cores; {}.\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        rows.iter().map(|r| format!("{} {}", r.q.label, r.version)).collect::<Vec<_>>().join(", ")
    ));
    md.push_str("Ratios (×) are to the raw `INSERT … ON CONFLICT DO NOTHING` ceiling of the same database, 16 clients, measured in the same run.\n\n");
    md.push_str("| backend | raw ceiling (rows/s) | enqueue (calls/s) | drain, 20,000 jobs in 2,000 groups (jobs/s) | intake (webhooks/s) | intake ÷ same writes without HTTP | intake p50 / p99 (ms) | webhook → entitlement p50 / p99 (ms) | webhook drain (events/s) | race pair → both applied p50 / p99 (ms) | overlaps |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        let c = r.q.ceiling;
        md.push_str(&format!(
            "| {} | {:.0} | {:.0} (×{:.2}) | {:.0} (×{:.2}) | {:.0} (×{:.2}) | {:.0} / {:.0} (×{:.2}) | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} (×{:.2}) | {:.1} / {:.1} | {} |\n",
            r.q.label,
            c,
            r.q.enqueue,
            r.q.enqueue / c,
            r.q.drain,
            r.q.drain / c,
            r.i.rate,
            r.i.rate / c,
            r.i.rate,
            r.i.storage_rate,
            r.i.rate / r.i.storage_rate,
            r.i.p50,
            r.i.p99,
            r.e.effect_p50,
            r.e.effect_p99,
            r.e.drain,
            r.e.drain / c,
            r.e.pair_p50,
            r.e.pair_p99,
            r.q.overlaps
        ));
    }
    md.push_str("\nThe application's read API (`subsync-bench read`): 16 concurrent readers over loopback HTTP, 40,000 requests on 2,000 stored users (and one in eleven never seen), whole entitlements and single features, every eighth request revalidating an ETag; beside the same reads without HTTP.\n\n");
    md.push_str(read::HEADER);
    for r in &rows {
        md.push_str(&r.r.row());
        md.push('\n');
    }
    if let (Some(g), Some(pg)) = (&reference, rows.iter().find(|r| r.q.label == "PostgreSQL")) {
        md.push_str(&format!(
            "\nSame run, same PostgreSQL, same drain workload: graphile-worker {} drained {:.0} jobs/s \
             (no overlaps, every effect counted); subsync drained {:.0} jobs/s, **×{:.1}**.\n",
            graphile::version()?,
            g.drain,
            pg.q.drain,
            pg.q.drain / g.drain
        ));
    }
    println!("\n{md}");
    let old = std::fs::read_to_string(&args.output).unwrap_or_default();
    let marker = "<!-- report -->";
    let doc = match old.split_once(marker) {
        Some((head, _)) => format!("{head}{marker}\n{md}"),
        None => format!("# Benchmarks\n\n{marker}\n{md}"),
    };
    std::fs::write(&args.output, doc).with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!("written to {}", args.output.display());
    Ok(())
}

async fn version(db: &BenchDb) -> Result<String> {
    Ok(match db.store.pool() {
        Dialect::Sqlite(pool) => sqlx::query_scalar::<_, String>("SELECT sqlite_version()").fetch_one(pool).await?,
        Dialect::Postgres(pool) => sqlx::query_scalar::<_, String>("SHOW server_version").fetch_one(pool).await?,
    })
}
