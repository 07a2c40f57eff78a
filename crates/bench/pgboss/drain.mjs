// The pg-boss side of `subsync-bench report`'s same-run comparison: the issue's drain workload
// (N jobs spread over G serialized groups, 16-way concurrency, a small upsert per job, a
// no-overlap check) on pg-boss, in a scratch schema, so both queues are measured in the same run
// on the same database. Prints one JSON line: {"drain": jobs_per_second, ...}.
//
//   node drain.mjs --url postgres://postgres@127.0.0.1:5432/test [--jobs 20000 --groups 2000 --concurrency 16]
//
// Bounded: gives up (exit 1) after --max-seconds (default 600), dropping its scratch schema first.
//
// How pg-boss 12.38.0 is set up (options read from its dist/ source; the aim is the best figure a
// reasonable user gets from documented options, not a crippled one):
// - Queue `effect` with policy "key_strict_fifo": at most one active job per singletonKey, FIFO
//   within the key. singletonKey = the group (`g${n % groups}`). Job id = UUIDv5 of the event id
//   `job_${n}`, so enqueueing an event twice is a no-op (insert is ON CONFLICT DO NOTHING), the
//   counterpart of graphile's jobKey. Enqueued with boss.insert() in batches of 1,000.
// - One work() subscription, batchSize = --concurrency (16), localConcurrency 1: each fetch claims up
//   to 16 jobs (key_strict_fifo hands out at most one head job per key), the handler runs the batch's
//   jobs concurrently, pg-boss completes the batch in one statement; so at most 16 jobs run at once.
//   pg-boss has no per-job slot pool like graphile's `concurrency`; this is its closest 16-way form.
// - burstWhenBatchFull: true: fetch again at once while fetches come back full. Without it every
//   fetch waits out the polling interval (default 2 s: ~31 jobs/s in an earlier trial).
//   pollingIntervalSeconds: 0.5, the minimum pg-boss accepts, for the wait after a short fetch (in
//   practice only at the tail: the full workload sees 0 short batches of 1,250).
// - ANALYZE of the job table after enqueueing, before the clock starts. The bench server runs with
//   autovacuum off; with no statistics the planner joins key_strict_fifo's strict_fifo_heads CTE by
//   nested loop over all 20,000 pending rows: 7.8 s per fetch, ~2 jobs/s, runs past 600 s. (That is
//   what an earlier trial saw and blamed on short fetches.) ANALYZE stands in for autovacuum; the
//   fetch then takes ~30 ms (it still reads every pending row to find each key's head).
// - The upsert runs on pg-boss's own pool (boss.getDb(), max = concurrency + 2), as graphile's
//   helpers.query does on its worker pool. schedule: false, since nothing here is cron.
// Tried and left out (noisy 2-core machine, jobs/s full 20,000×2,000 / small 2,000×200):
//   localConcurrency 2 × batchSize 8: 310–600 / 440–1000, below 1 × 16 in paired full runs
//   (537, 368, 627 against 314, 311, 346); localConcurrency 4 × batchSize 4: 250 / 510;
//   localConcurrency 16 × batchSize 1 with burstWhenReadyExceeds 1 (monitorIntervalSeconds and
//   queueCacheIntervalSeconds 1): 145 / 33, its ready count is a cached statistic;
//   queue option partition: true: 500 / 590, no gain. Chosen setup: 370–630 / 410–800 jobs/s.
// pg-boss 12 declares Node >= 22.12; it runs this workload on Node 20 (npm warns EBADENGINE).
import { PgBoss } from "pg-boss";
import pg from "pg";
import { peerArgs } from "../peer-args.mjs";
import { v5 as uuidv5 } from "uuid";

const { url, jobs, groups, concurrency, maxSeconds } = peerArgs();

const tag = `${process.pid}_${Date.now()}`;
const bossSchema = `pgboss_${tag}`;
const appTable = `pgboss_effects_${tag}`;
const queue = "effect";
// Namespace of the v5 job ids: any fixed uuid does; this is the RFC 4122 DNS namespace.
const idNamespace = uuidv5.DNS;
const admin = new pg.Pool({ connectionString: url, max: 2 });
const log = (msg) => console.error(`[pg-boss] ${msg}`);

let boss;
let done = 0;
// Stops pg-boss, drops its scratch schema and the effects table: on success, failure and deadline.
async function cleanup() {
  if (boss) await boss.stop({ graceful: false, timeout: 1000 }).catch(() => {});
  boss = undefined;
  await admin.query(`DROP SCHEMA IF EXISTS ${bossSchema} CASCADE`).catch(() => {});
  await admin.query(`DROP TABLE IF EXISTS ${appTable}`).catch(() => {});
}
const deadline = setTimeout(async () => {
  console.error(`drain.mjs: not done within ${maxSeconds}s (${done} of ${jobs} jobs done)`);
  await cleanup();
  process.exit(1);
}, maxSeconds * 1000);

try {
  await admin.query(`CREATE TABLE ${appTable} (group_key text PRIMARY KEY, n int NOT NULL)`);
  boss = new PgBoss({ connectionString: url, schema: bossSchema, max: concurrency + 2, schedule: false });
  boss.on("error", (err) => log(`error: ${err.message}`));
  await boss.start();
  await boss.createQueue(queue, { policy: "key_strict_fifo" });

  log(`enqueue ${jobs} jobs in ${groups} key_strict_fifo keys…`);
  for (let start = 0; start < jobs; start += 1000) {
    const batch = [];
    for (let n = start; n < Math.min(start + 1000, jobs); n++) {
      const g = `g${n % groups}`;
      batch.push({ id: uuidv5(`job_${n}`, idNamespace), data: { g, n }, singletonKey: g });
    }
    await boss.insert(queue, batch);
  }
  await admin.query(`ANALYZE ${bossSchema}.job`);

  log("drain…");
  const db = boss.getDb();
  const active = new Map();
  let overlaps = 0;
  let batches = 0;
  let shortBatches = 0;
  let finished;
  const allDone = new Promise((resolve) => (finished = resolve));
  const effect = async (job) => {
    const { g, n } = job.data;
    if (active.has(g)) overlaps++;
    active.set(g, n);
    await db.executeSql(
      `INSERT INTO ${appTable} (group_key, n) VALUES ($1, 1) ON CONFLICT (group_key) DO UPDATE SET n = ${appTable}.n + 1`,
      [g],
    );
    active.delete(g);
    if (++done === jobs) finished();
  };
  const started = process.hrtime.bigint();
  await boss.work(
    queue,
    { batchSize: concurrency, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true },
    async (batch) => {
      batches++;
      if (batch.length < concurrency) shortBatches++;
      await Promise.all(batch.map(effect));
    },
  );
  await allDone;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await boss.stop({ graceful: true, timeout: 10000 });
  boss = undefined;
  const { rows } = await admin.query(`SELECT coalesce(sum(n), 0)::int AS effects FROM ${appTable}`);
  const result = { drain: jobs / seconds, seconds, jobs, effects: rows[0].effects, overlaps };
  log(`${jobs} jobs in ${seconds.toFixed(2)} s (${batches} batches, ${shortBatches} short)`);
  console.log(JSON.stringify(result));
} finally {
  clearTimeout(deadline);
  await cleanup();
  await admin.end();
}
