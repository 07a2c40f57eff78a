#!/usr/bin/env node
// Cross-check helper: signs and verifies Stripe webhook headers with the
// OFFICIAL stripe-node SDK, so crates/stripe/tests/official_sdks.rs can prove
// our Rust implementation agrees with Stripe's own code.
//
// The payload is read from stdin (raw bytes, decoded as UTF-8 like the SDK does).
//   node sign.js sign   <secret> <timestamp>                 -> prints the header
//   node sign.js verify <secret> <header> <now_unix> [tolerance_secs]
//        -> prints "ok <event id>" and exits 0, or prints the SDK's error and exits 1
// Exit code 2: usage error; 3: the stripe package is not installed.
'use strict';

let Stripe;
try {
  Stripe = require('stripe');
} catch (e) {
  console.error('sign.js: cannot load the npm package "stripe"; run tests/official-stripe/install.sh (' + e.message + ')');
  process.exit(3);
}
const version = require(require('path').join(__dirname, 'node_modules', 'stripe', 'package.json')).version;
// No network call is ever made: only the webhook helpers are used.
const stripe = new Stripe('sk_test_crosscheck_not_a_real_key');

function readStdin() {
  const chunks = [];
  const fs = require('fs');
  const buf = Buffer.alloc(1 << 16);
  for (;;) {
    let n;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      if (e.code === 'EOF') break;
      throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'version') {
  console.log(version);
} else if (cmd === 'sign' && args.length === 2) {
  const payload = readStdin().toString('utf8');
  const header = stripe.webhooks.generateTestHeaderString({
    payload,
    secret: args[0],
    timestamp: Number(args[1]),
  });
  process.stdout.write(header + '\n');
} else if (cmd === 'verify' && (args.length === 3 || args.length === 4)) {
  const payload = readStdin();
  const [secret, header, nowUnix, tolerance] = args;
  try {
    const event = stripe.webhooks.constructEvent(
      payload,
      header,
      secret,
      tolerance === undefined ? 300 : Number(tolerance),
      undefined,
      Number(nowUnix) * 1000,
    );
    process.stdout.write('ok ' + event.id + '\n');
  } catch (e) {
    process.stdout.write('rejected: ' + e.message.split('\n')[0] + '\n');
    process.exit(1);
  }
} else {
  console.error('usage: node sign.js version | sign <secret> <timestamp> | verify <secret> <header> <now_unix> [tolerance]  (payload on stdin)');
  process.exit(2);
}
