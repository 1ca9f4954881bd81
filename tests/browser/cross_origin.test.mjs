// A page on another origin uses Hallmark's public API from headless Chromium (Debian's), the way
// another organisation's verify site, a browser extension or a log monitor in JavaScript would.
// Run by tests/browser.rs against a running `hallmark serve`; what it needs comes in the
// environment:
//   HALLMARK_BASE_URL, HALLMARK_GENERATOR_KEY, HALLMARK_RECORD_ID (a record in the log),
//   HALLMARK_TILE (a log tile path that exists, e.g. tile/0/000.p/1), HALLMARK_IMAGE (a signed
//   image of that record, a file), HALLMARK_NODE_MODULES, HALLMARK_CHROMIUM.
// The second origin is a page served by this script from its own port on 127.0.0.1; the browser,
// not this script, decides what the page may read. Prints one JSON line of what the page saw.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (this script is run by tests/browser.rs)`);
  return value;
};

const BASE = env('HALLMARK_BASE_URL');
const KEY = env('HALLMARK_GENERATOR_KEY');
const RECORD = env('HALLMARK_RECORD_ID');
const TILE = env('HALLMARK_TILE');
const IMAGE = fs.readFileSync(env('HALLMARK_IMAGE'));
const require = createRequire(path.join(env('HALLMARK_NODE_MODULES'), 'noop.js'));
const { chromium } = require('playwright-core');

// The other site: one empty page, on a port of its own (another origin than BASE).
const site = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end('<!doctype html><title>another site</title><p>checks Hallmark images</p>');
});
await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
const OTHER = `http://127.0.0.1:${site.address().port}`;
assert.notEqual(new URL(OTHER).origin, new URL(BASE).origin);

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'hallmark-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.HALLMARK_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
});
context.setDefaultTimeout(60_000);

// Every request the pages make to Hallmark, by method and path, for the failure message.
const sent = [];
context.on('request', (request) => {
  const url = new URL(request.url());
  if (url.origin === new URL(BASE).origin) sent.push(`${request.method()} ${url.pathname}`);
});

// What a page's script sees of a fetch: the status, the headers it may read, the body; or the
// TypeError a browser raises when CORS withholds the answer.
async function fetchFrom(page, url, init = {}) {
  return page.evaluate(async ({ url, init }) => {
    if (init.bodyBytes) {
      init.body = new Uint8Array(init.bodyBytes);
      delete init.bodyBytes;
    }
    try {
      const response = await fetch(url, init);
      const text = await response.text();
      return {
        ok: true,
        status: response.status,
        etag: response.headers.get('etag'),
        recordId: response.headers.get('x-hallmark-record-id'),
        contentType: response.headers.get('content-type'),
        text,
      };
    } catch (error) {
      return { ok: false, error: `${error.name}: ${error.message}` };
    }
  }, { url, init });
}

let failed = false;
const seen = {};
try {
  const page = await context.newPage();
  await page.goto(`${OTHER}/`);
  assert.equal(await page.title(), 'another site');

  // The Soft Binding Resolution API's algorithm list: a simple GET.
  const algorithms = await fetchFrom(page, `${BASE}/c2pa/v1/services/supportedAlgorithms`);
  assert.ok(algorithms.ok, `supportedAlgorithms: ${algorithms.error}`);
  assert.equal(algorithms.status, 200);
  assert.ok(Array.isArray(JSON.parse(algorithms.text).fingerprints), algorithms.text);
  seen.supportedAlgorithms = algorithms.status;

  // A tile of the transparency log, with its ETag readable (Access-Control-Expose-Headers).
  const tile = await fetchFrom(page, `${BASE}/log/${TILE}`);
  assert.ok(tile.ok, `tile: ${tile.error}`);
  assert.equal(tile.status, 200);
  assert.ok(tile.etag, 'the tile ETag is exposed to the page');
  seen.tile = { status: tile.status, etag: tile.etag };

  // The checkpoint, and the record by id.
  const checkpoint = await fetchFrom(page, `${BASE}/log/checkpoint`);
  assert.ok(checkpoint.ok && checkpoint.status === 200, JSON.stringify(checkpoint));
  const record = await fetchFrom(page, `${BASE}/v1/records/${RECORD}`);
  assert.ok(record.ok, `record: ${record.error}`);
  assert.equal(record.status, 200);
  assert.equal(JSON.parse(record.text).id, RECORD);
  seen.record = record.status;

  // A POST with an image body: not a simple request, so the browser asks first (preflight).
  const byContent = await fetchFrom(page, `${BASE}/c2pa/v1/matches/byContent`, {
    method: 'POST',
    headers: { 'Content-Type': 'image/png' },
    bodyBytes: [...IMAGE],
  });
  assert.ok(byContent.ok, `byContent: ${byContent.error}`);
  assert.equal(byContent.status, 200, byContent.text);
  assert.ok(byContent.text.includes('manifestId'), `the image matches its record: ${byContent.text}`);
  seen.byContent = byContent.status;

  // A keyed route, with a valid key: the preflight gets no CORS answer, so the browser never
  // sends the POST and the page sees a network error. (Chromium does not report preflights to
  // the page's request events: tests/browser.rs counts them in Hallmark's metrics.)
  const generate = await fetchFrom(page, `${BASE}/v1/generations`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ count: 1 }),
  });
  assert.equal(generate.ok, false, `a page on another origin must not generate: ${JSON.stringify(generate)}`);
  assert.match(generate.error, /TypeError/);
  seen.crossOriginGeneration = generate.error;

  // The same call from Hallmark's own origin (its verify page) goes through: the refusal above
  // is the origin's, not the key's.
  const own = await context.newPage();
  await own.goto(`${BASE}/`);
  const sameOrigin = await fetchFrom(own, `${BASE}/v1/generations`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ count: 1 }),
  });
  assert.ok(sameOrigin.ok, `same origin: ${sameOrigin.error}`);
  assert.equal(sameOrigin.status, 201, sameOrigin.text);
  seen.sameOriginGeneration = sameOrigin.status;
  console.log(JSON.stringify({ other: OTHER, seen }));
} catch (error) {
  failed = true;
  console.error(`FAIL: ${error.stack || error}\nrequests sent to Hallmark: ${sent.join(', ')}`);
} finally {
  await context.close();
  site.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
