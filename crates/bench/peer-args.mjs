// The command line every peer driver (`graphile/drain.mjs`, `pgboss/drain.mjs`) shares:
//   --url postgres://… (or SUBSYNC_BENCH_POSTGRES_URL; loopback hosts only)
//   --jobs 20000 --groups 2000 --concurrency 16 --max-seconds 600 (positive integers)
// Bad arguments end the process with exit code 2 and a message naming the flag.

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

function refuse(message) {
  console.error(`drain.mjs: ${message}`);
  process.exit(2);
}

/** The checked workload and database of a peer run. */
export function peerArgs() {
  const url = arg("url", process.env.SUBSYNC_BENCH_POSTGRES_URL);
  if (!url) refuse("give --url postgres://… (or SUBSYNC_BENCH_POSTGRES_URL)");
  const host = new URL(url).hostname;
  if (!["127.0.0.1", "localhost", "[::1]"].includes(host)) refuse(`refusing a non-loopback database host ${host}`);
  const number = (flag, fallback) => {
    const v = Number(arg(flag, fallback));
    if (!Number.isInteger(v) || v < 1) refuse(`--${flag} must be a positive integer`);
    return v;
  };
  return {
    url,
    jobs: number("jobs", 20000),
    groups: number("groups", 2000),
    concurrency: number("concurrency", 16),
    maxSeconds: number("max-seconds", 600),
  };
}
