//! `subsync-bench report`: every figure in one run, on SQLite and PostgreSQL, as ratios to
//! the same database's raw insert ceiling measured in the same run; printed as markdown and
//! written to a docs file with the machine's cores and database versions.

use std::path::PathBuf;

use anyhow::{Context, Result};
use subsync_queue::{Dialect, QueueConfig};

use crate::db::BenchDb;
use crate::payload::Payload;
use crate::peers::{self, Peer};
use crate::{e2e, intake, queue, read};

/// Options of `subsync-bench report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// PostgreSQL server (a scratch schema is created and dropped).
    #[arg(long, env = "SUBSYNC_BENCH_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// Also drain the same workload with these peer queues (Node.js; each installed from npm
    /// into its folder under crates/bench on first use) on the same PostgreSQL, right after
    /// subsync's own drain, for same-run ratios: `graphile-worker`, `pg-boss`.
    #[arg(long, value_delimiter = ',')]
    peers: Vec<String>,
    /// Same as `--peers graphile-worker` (kept for older scripts).
    #[arg(long)]
    graphile: bool,
    /// Where to write the markdown report.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
}

struct Row {
    version: String,
    q: queue::Figures,
    /// Per payload, realistic first: its same-payload ceiling, intake and end-to-end figures.
    webhooks: Vec<(f64, intake::Figures, e2e::Figures)>,
    r: read::Figures,
}

/// The webhook rows: the realistic body (the default) and the small one of earlier reports.
const PAYLOADS: [Payload; 2] = [Payload::Realistic, Payload::Small];

pub async fn run(args: Args) -> Result<()> {
    let mut peer_names = args.peers.clone();
    if args.graphile && !peer_names.iter().any(|n| n == "graphile-worker" || n == "graphile") {
        peer_names.insert(0, "graphile-worker".into());
    }
    let peers = peers::by_names(&peer_names)?;
    // The workload: 20,000 jobs in 2,000 serialized groups (the peers' reference).
    let workload = queue::Workload { jobs: 20_000, groups: 2_000, concurrency: 16, duplicate_percent: 10 };
    let mut rows = Vec::new();
    let mut references: Vec<(Peer, peers::Figures)> = Vec::new();
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
        db.close().await;
        if postgres {
            // Right after our own drain, on the same server: the queues are compared directly.
            for &peer in &peers {
                let url = args.postgres.clone();
                let figures = tokio::task::spawn_blocking(move || peer.measure(&url, workload)).await??;
                references.push((peer, figures));
            }
        }
        let mut webhooks = Vec::new();
        for payload in PAYLOADS {
            // A fresh database per stage: the intake run leaves 10,000 jobs that would skew the worker.
            let db = open().await?;
            let ceiling = queue::raw_ceiling(&db.store, 16, 10_000, Some(payload)).await?;
            let i = intake::measure(&db, 10_000, 16, Default::default(), payload).await?;
            db.close().await;
            let db = open().await?;
            let group = subsync_worker::GroupCommit::default_for(db.store.backend());
            let e = e2e::measure(&db, 100, 3_000, 16, group, payload).await?;
            db.close().await;
            webhooks.push((ceiling, i, e));
        }
        let db = open().await?;
        let r = read::measure(&db, 2_000, 40_000, 16).await?;
        db.close().await;
        rows.push(Row { version, q, webhooks, r });
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mut md = String::new();
    md.push_str(&format!(
        "Run {} on {cores} cores; {}.\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        rows.iter().map(|r| format!("{} {}", r.q.label, r.version)).collect::<Vec<_>>().join(", ")
    ));
    md.push_str("Ratios (×) are to the raw `INSERT … ON CONFLICT DO NOTHING` ceiling of the same database, 16 clients, measured in the same run: the queue's rows insert a key only, the webhook rows the key and the same event body the intake stores.\n\n");
    md.push_str("| backend | raw ceiling (rows/s) | enqueue (calls/s) | drain, 20,000 jobs in 2,000 groups (jobs/s) | the same with group commit (jobs/s) | overlaps |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        let c = r.q.ceiling;
        md.push_str(&format!(
            "| {} | {:.0} | {:.0} (×{:.2}) | {:.0} (×{:.2}) | {:.0} (×{:.2}) | {} |\n",
            r.q.label,
            c,
            r.q.enqueue,
            r.q.enqueue / c,
            r.q.drain,
            r.q.drain / c,
            r.q.drain_grouped,
            r.q.drain_grouped / c,
            r.q.overlaps
        ));
    }
    md.push_str("\nThe webhook path, through real HTTP into an in-process intake and worker (the worker's default group commit for the backend), for a realistic `customer.subscription.updated` (the whole subscription object, as Stripe sends it) and for the 600-byte body of earlier reports: 10,000 webhooks for the intake, 3,000 for the drain, 100 race pairs, 16 senders.\n\n");
    md.push_str("| backend | payload | raw ceiling, same body (rows/s) | intake (webhooks/s) | intake ÷ same writes without HTTP | intake p50 / p99 (ms) | webhook → entitlement p50 / p99 (ms) | webhook drain (events/s) | race pair → both applied p50 / p99 (ms) |\n");
    md.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        for (c, i, e) in &r.webhooks {
            md.push_str(&format!(
                "| {} | {} | {:.0} | {:.0} (×{:.2}) | {:.0} / {:.0} (×{:.2}) | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} (×{:.2}) | {:.1} / {:.1} |\n",
                r.q.label,
                i.payload.label(),
                c,
                i.rate,
                i.rate / c,
                i.rate,
                i.storage_rate,
                i.rate / i.storage_rate,
                i.p50,
                i.p99,
                e.effect_p50,
                e.effect_p99,
                e.drain,
                e.drain / c,
                e.pair_p50,
                e.pair_p99
            ));
        }
    }
    md.push_str("\nThe application's read API (`subsync-bench read`): 16 concurrent readers over loopback HTTP, 40,000 requests on 2,000 stored users (and one in eleven never seen), whole entitlements and single features, every eighth request revalidating an ETag; beside the same reads without HTTP.\n\n");
    md.push_str(read::HEADER);
    for r in &rows {
        md.push_str(&r.r.row());
        md.push('\n');
    }
    if let Some(pg) = rows.iter().find(|r| r.q.label == "PostgreSQL")
        && !references.is_empty()
    {
        md.push_str(&format!(
            "\nSame run, same PostgreSQL, same drain workload (each peer run right after subsync's drains, no overlaps, every effect counted): subsync drained {:.0} jobs/s committing each job alone, {:.0} with group commit",
            pg.q.drain, pg.q.drain_grouped
        ));
        for (peer, f) in &references {
            md.push_str(&format!(
                "; {} {} {:.0} jobs/s, subsync **×{:.1}** (×{:.1} alone)",
                peer.name,
                peer.version()?,
                f.drain,
                pg.q.drain_grouped / f.drain,
                pg.q.drain / f.drain
            ));
        }
        md.push_str(".\n");
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
