#!/usr/bin/env node
// Fidelity helper: reads subsync's fake Stripe API (crates/stripe-api, feature
// `testing`) with the OFFICIAL stripe-node SDK, so
// crates/stripe-api/tests/official_sdk.rs can prove the fake is a Stripe the
// official client can read. Same commands and output as fake_api.py:
//   node fake_api.js version
//   node fake_api.js read <base_url> <api_key>      (parameters as JSON on stdin)
//   node fake_api.js wrong-key <base_url> <api_key>
//   node fake_api.js retry <base_url> <api_key> <subscription id> <max_network_retries>
// Exit code 2: usage error; 3: the stripe package is not installed.
'use strict';

let Stripe;
try {
  Stripe = require('stripe');
} catch (e) {
  console.error('fake_api.js: cannot load the npm package "stripe"; run tests/official-stripe/install.sh (' + e.message + ')');
  process.exit(3);
}
const version = require(require('path').join(__dirname, 'node_modules', 'stripe', 'package.json')).version;

function client(baseUrl, apiKey, retries) {
  const url = new URL(baseUrl);
  return new Stripe(apiKey, {
    host: url.hostname,
    port: Number(url.port),
    protocol: url.protocol.replace(':', ''),
    maxNetworkRetries: retries || 0,
    telemetry: false,
  });
}

// Plain JSON copies (drops the SDK's non-enumerable lastResponse).
const plain = (value) => JSON.parse(JSON.stringify(value));

async function all(list) {
  return plain(await list.autoPagingToArray({ limit: 10000 }));
}

async function read(baseUrl, apiKey, params) {
  const c = client(baseUrl, apiKey);
  const out = {};
  const first = await c.events.list({ limit: 3 });
  out.events_first_page = { ids: first.data.map((e) => e.id), has_more: first.has_more, url: first.url, object: first.object };
  out.events_all = await all(c.events.list({ limit: 3 }));
  out.events_filtered = (await all(c.events.list({
    limit: 2,
    types: params.types,
    created: { gte: params.created_gte, lt: params.created_lt },
  }))).map((e) => e.id);
  out.events_wildcard = (await all(c.events.list({ limit: 4, type: 'customer.subscription.*' }))).map((e) => e.id);
  out.events_newer_than = (await all(c.events.list({ limit: 4, ending_before: params.ending_before }))).map((e) => e.id);
  out.event = plain(await c.events.retrieve(params.event));
  out.subscriptions_all = await all(c.subscriptions.list({ status: 'all', expand: ['data.customer'], limit: 2 }));
  out.subscriptions_default = (await all(c.subscriptions.list({ limit: 100 }))).map((s) => s.id);
  const sub = await c.subscriptions.retrieve(params.subscription, { expand: ['customer'] });
  out.subscription = plain(sub);
  out.customer = plain(await c.customers.retrieve(params.customer));
  out.checkout_sessions = plain((await c.checkout.sessions.list({ subscription: params.subscription })).data);
  try {
    await c.subscriptions.retrieve('sub_missing');
    out.missing = null;
  } catch (e) {
    out.missing = { http_status: e.statusCode, code: e.code, message: e.message };
  }
  return out;
}

const failure = (e) => ({ error: e.type, http_status: e.statusCode, code: e.code || null, message: e.message });

async function main(argv) {
  if (argv[0] === 'version' && argv.length === 1) {
    console.log(version);
    return 0;
  }
  if (argv[0] === 'read' && argv.length === 3) {
    const params = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    console.log(JSON.stringify(await read(argv[1], argv[2], params)));
    return 0;
  }
  if (argv[0] === 'wrong-key' && argv.length === 3) {
    try {
      await client(argv[1], argv[2], 2).events.list({ limit: 1 });
      console.log(JSON.stringify({ error: null }));
    } catch (e) {
      console.log(JSON.stringify(failure(e)));
    }
    return 0;
  }
  if (argv[0] === 'retry' && argv.length === 5) {
    try {
      const sub = await client(argv[1], argv[2], Number(argv[4])).subscriptions.retrieve(argv[3]);
      console.log(JSON.stringify({ id: sub.id }));
    } catch (e) {
      console.log(JSON.stringify(failure(e)));
    }
    return 0;
  }
  console.error('usage: node fake_api.js version | read <base_url> <key> (JSON on stdin) | wrong-key <base_url> <key> | retry <base_url> <key> <subscription> <retries>');
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(e && e.stack ? e.stack : String(e));
    process.exit(1);
  },
);
