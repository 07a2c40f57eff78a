// The graphile-worker side of `subsync-bench report --graphile`: the drain workload
// (N jobs spread over G serialized named queues, 16-way concurrency, a small upsert per job,
// a no-overlap check) on graphile-worker, in a scratch schema, so both queues are measured
// in the same run on the same database. Prints one JSON line: {"drain": jobs_per_second, ...}.
//
//   node drain.mjs --url postgres://postgres@127.0.0.1:5432/test [--jobs 20000 --groups 2000 --concurrency 16]
//
// Bounded: gives up (exit 1) after --max-seconds (default 600).
import { Logger, run, makeWorkerUtils } from "graphile-worker";
import pg from "pg";
import { peerArgs } from "../peer-args.mjs";

const { url, jobs, groups, concurrency, maxSeconds } = peerArgs();

const tag = `${process.pid}_${Date.now()}`;
const workerSchema = `gw_${tag}`;
const appTable = `gw_effects_${tag}`;
const admin = new pg.Pool({ connectionString: url, max: 2 });
const log = (msg) => console.error(`[graphile-worker] ${msg}`);
const quiet = () => () => {};

let runner;
let utils;
const deadline = setTimeout(() => {
  console.error(`drain.mjs: not done within ${maxSeconds}s`);
  process.exit(1);
}, maxSeconds * 1000);

try {
  await admin.query(`CREATE TABLE ${appTable} (group_key text PRIMARY KEY, n int NOT NULL)`);
  utils = await makeWorkerUtils({ connectionString: url, schema: workerSchema });
  await utils.migrate();

  log(`enqueue ${jobs} jobs in ${groups} serialized queues…`);
  for (let start = 0; start < jobs; start += 1000) {
    const specs = [];
    for (let n = start; n < Math.min(start + 1000, jobs); n++) {
      const g = `g${n % groups}`;
      specs.push({ identifier: "effect", payload: { g, n }, queueName: g, jobKey: `job_${n}` });
    }
    await utils.addJobs(specs);
  }

  log("drain…");
  const active = new Map();
  let overlaps = 0;
  let done = 0;
  let finished;
  const allDone = new Promise((resolve) => (finished = resolve));
  const started = process.hrtime.bigint();
  runner = await run({
    connectionString: url,
    schema: workerSchema,
    concurrency,
    maxPoolSize: concurrency + 2,
    noHandleSignals: true,
    pollInterval: 1000,
    logger: new Logger(quiet),
    taskList: {
      effect: async (payload, helpers) => {
        if (active.has(payload.g)) overlaps++;
        active.set(payload.g, payload.n);
        await helpers.query(
          `INSERT INTO ${appTable} (group_key, n) VALUES ($1, 1) ON CONFLICT (group_key) DO UPDATE SET n = ${appTable}.n + 1`,
          [payload.g],
        );
        active.delete(payload.g);
        if (++done === jobs) finished();
      },
    },
  });
  await allDone;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await runner.stop();
  runner = undefined;
  const { rows } = await admin.query(`SELECT coalesce(sum(n), 0)::int AS effects FROM ${appTable}`);
  const result = { drain: jobs / seconds, seconds, jobs, effects: rows[0].effects, overlaps };
  log(`${jobs} jobs in ${seconds.toFixed(2)} s`);
  console.log(JSON.stringify(result));
} finally {
  clearTimeout(deadline);
  if (runner) await runner.stop().catch(() => {});
  if (utils) await utils.release().catch(() => {});
  await admin.query(`DROP SCHEMA IF EXISTS ${workerSchema} CASCADE`).catch(() => {});
  await admin.query(`DROP TABLE IF EXISTS ${appTable}`).catch(() => {});
  await admin.end();
}
