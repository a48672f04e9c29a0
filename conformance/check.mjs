#!/usr/bin/env node
// Conformance run: the relay in Pyodide 0.28.2 (the Python of the Workers runtime for this project's
// compatibility date) must behave exactly as it does in CPython, offline, on loopback only.
//
//   uv run node conformance/check.mjs [--python PATH] [--json REPORT.json]
//
// Checks (each PASS or FAIL, never skipped; exit 1 on any failure):
//   runtime         wrangler.toml's compatibility date runs Pyodide 0.28.2, node_modules/pyodide is that one
//                   (Python 3.13), the SDK tested is uv.lock's
//   core-identical  conformance/core_events.py prints the same bytes under CPython and Pyodide
//   entry-imports   src/entry.py imports in Pyodide next to the real `workers` SDK (workers-runtime-sdk 1.9.5)
//   send-path       conformance/send_path.py: relay.jobs.service over the Worker's ports (entry.FetchHttp on JS
//                   fetch, entry.D1 on a real D1 from miniflare) gives the same output, and the same requests
//                   reach the fakes, as over the local runner's ports (httpx, SQLite) in CPython; entry.D1.of
//                   keeps one port (and its prepared statements) per D1 binding, a new one for another
//   worker-fetch    entry.Default(ctx, env).fetch() on signed webhooks, end to end: answers, waitUntil, the
//                   event Meta receives, the D1 ledger, the R2 delivery log; a thank-you post (204 without a
//                   body, CF-Connecting-IP stored) and GET /bridge.js
//   worker-scheduled  a webhook whose waitUntil work died is sent by entry.Default.scheduled() (the cron sweep)
//   free-log-spool  RELAY_PLAN=free: the webhook, its redelivery and a thank-you post stage their log lines in their
//                   one D1 call (no R2 put), with the ledger's answer filled in by workerd's D1 (changes(),
//                   last_insert_rowid()); a listing pass stages its page's lines in the page's batch (changes() after
//                   each UPSERT); the cron sends both orders once and copies every staged row to R2, a shop's lines
//                   in id order (a window group_concat), the sending passes' attempt lines included
//   orders-api      conformance/orders_api.py: GET /orders and POST /orders/replay through entry.Default.fetch() on
//                   miniflare's D1 (auth, 404, pages, refusals, a replay sent in waitUntil) answer exactly as the
//                   same scenario does on the local runner's routes and SQLite under CPython, and Meta gets the
//                   same events
//
// Upstreams are the project's own fakes (relay_tools.fakes) started by conformance/upstreams.py under
// CPython. D1 and R2 are miniflare's (the workerd binary from the wrangler package), reached from Node.
// Pyodide, the SDK and miniflare are set up by conformance/pyodide_worker.mjs, as for bench/bench_worker_cpu.mjs.

import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

import {
  AS_JSON_VALUE, JsonLinesChild, PYODIDE_VERSION, REPO, SDK_VERSION, ensureSdk, fail, readMigrations, run, settle,
  splitStatements, startMiniflare as startMiniflareFor, startPyodide, wranglerConfig,
} from "./pyodide_worker.mjs";

const CHECK_TIMEOUT_S = 120;

function runtimePyodide({ date, flags }) {
  // https://developers.cloudflare.com/workers/languages/python/how-python-workers-work: which Pyodide the Workers runtime runs for a compat date and flags.
  if (flags.some((f) => ["python_workers_314", "python_workers_20260610", "python_workers_20260817"].includes(f)) ||
      date >= "2026-09-08") return "314.x (Python 3.14)";
  if (date < "2025-09-29") return "0.26.0a2";
  return "0.28.2";
}

const { values: opts } = parseArgs({
  options: {
    python: { type: "string", default: process.env.PYTHON || "python" },
    json: { type: "string" },
  },
});

// --- the reference: CPython ------------------------------------------------------------------------

function cpythonVersion() {
  return run(opts.python, ["-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
    `CPython (--python ${opts.python})`).toString().trim();
}

class Upstreams extends JsonLinesChild {
  // conformance/upstreams.py: FakeMeta, a slow FakeMeta, FakeLightspeed on 127.0.0.1.
  constructor() {
    super("conformance/upstreams.py", 30);
  }
  start() {
    return super.start(opts.python, [join(REPO, "conformance", "upstreams.py")]);
  }
  dump() {
    return this.ask("dump", "reading recorded requests");
  }
  list(orders) {
    return this.ask(`list ${JSON.stringify(orders)}`, "setting the orders Lightspeed lists");
  }
}

// --- D1 and R2: miniflare's, behind classes named as workerd names them ------------------------------
// The SDK picks its binding wrapper by JS constructor name (D1Database, R2Bucket), so the miniflare
// proxies are wrapped in classes of those names, and the Worker meets the same conversions as in workerd.

class D1PreparedStatement {
  constructor(inner) { this.inner = inner; }
  bind(...values) { return new D1PreparedStatement(this.inner.bind(...values)); }
  all() { return this.inner.all(); }
  run() { return this.inner.run(); }
  first(column) { return this.inner.first(column); }
  raw(options) { return this.inner.raw(options); }
}

class D1Database {
  constructor(inner) { this.inner = inner; }
  prepare(sql) { return new D1PreparedStatement(this.inner.prepare(sql)); }
  batch(statements) { return this.inner.batch(statements.map((s) => s.inner)); }
  exec(sql) { return this.inner.exec(sql); }
}

class R2Bucket {
  constructor(inner) { this.inner = inner; }
  put(key, value, options) { return this.inner.put(key, value, options); }
  get(key, options) { return this.inner.get(key, options); }
  head(key) { return this.inner.head(key); }
  list(options) { return this.inner.list(options); }
  delete(keys) { return this.inner.delete(keys); }
}

function startMiniflare() {
  return startMiniflareFor("conformance", {
    d1Databases: { SEND_DB: "conformance-send-path", WORKER_DB: "conformance-worker", ORDERS_DB: "conformance-orders",
      BRIDGE_DB: "conformance-bridge", SPOOL_DB: "conformance-spool" },
    r2Buckets: { LOGS: "conformance-logs", SPOOL_LOGS: "conformance-spool-logs" },
  });
}

async function migrate(db) {
  // What `wrangler d1 migrations apply` runs: every migrations/*.sql in name order, each in one batch.
  const migrations = readMigrations();
  for (const { sql } of migrations) await db.batch(splitStatements(sql).map((s) => db.prepare(s)));
  return migrations.map((m) => m.file);
}

// --- comparisons -----------------------------------------------------------------------------------

function sha256(bytes) {
  return createHash("sha256").update(bytes).digest("hex");
}

function sameBytes(what, cpython, pyodide) {
  const a = Buffer.from(cpython);
  const b = Buffer.from(pyodide);
  if (Buffer.compare(a, b) === 0) return `${a.length} bytes, sha256 ${sha256(a).slice(0, 16)}… in both`;
  const la = a.toString("utf8").split("\n");
  const lb = b.toString("utf8").split("\n");
  let i = 0;
  while (i < la.length && la[i] === lb[i]) i += 1;
  const a1 = la[i] ?? "";
  const b1 = lb[i] ?? "";
  let col = 0;
  while (col < a1.length && a1[col] === b1[col]) col += 1;
  const clip = (line, k) => (k === i && line.length > 160 ? `…${line.slice(Math.max(0, col - 70), col + 70)}… (column ${col + 1})` : line);
  const context = (lines) => lines.slice(Math.max(0, i - 3), i + 3)
    .map((l, k) => `    ${Math.max(0, i - 3) + k + 1}: ${clip(l, Math.max(0, i - 3) + k)}`).join("\n");
  fail(`${what} differ (CPython ${a.length} bytes, Pyodide ${b.length} bytes), first at line ${i + 1}:\n` +
    `  CPython:\n${context(la)}\n  Pyodide:\n${context(lb)}`);
}

function expect(condition, message) {
  if (!condition) fail(message);
}

// --- the checks ------------------------------------------------------------------------------------

const ctx = {};

function lockedSdk() {
  // uv.lock's workers-runtime-sdk (the one deploy.sh vendors) must be the wheel tested here.
  const lock = readFileSync(join(REPO, "uv.lock"), "utf8");
  const block = /\[\[package\]\]\nname = "workers-runtime-sdk"\nversion = "([^"]+)"[\s\S]*?workers_runtime_sdk-[^"]*\.whl", hash = "(sha256:[0-9a-f]+)"/.exec(lock);
  return block ? { version: block[1], hash: block[2] } : null;
}

async function checkRuntime() {
  const config = wranglerConfig();
  const expected = runtimePyodide(config);
  expect(expected === PYODIDE_VERSION, `wrangler.toml's compatibility_date ${config.date} runs Pyodide ${expected} in ` +
    `the Worker, but this run tests ${PYODIDE_VERSION}: pin that Pyodide in package.json and update conformance/check.mjs`);
  const pinned = readFileSync(join(REPO, "conformance", "sdk-requirements.txt"), "utf8");
  const locked = lockedSdk();
  if (locked) {
    expect(pinned.includes(`==${locked.version} `) && pinned.includes(locked.hash),
      `uv.lock vendors workers-runtime-sdk ${locked.version} (${locked.hash.slice(0, 19)}…) but conformance/sdk-requirements.txt ` +
      `pins another wheel: make them the same`);
  }
  ctx.cpython = cpythonVersion();
  ctx.sdk = ensureSdk(opts.python);
  ctx.pyodide = await startPyodide({ sdkDir: ctx.sdk, sysPath: ["/repo/conformance", "/repo/src", "/sdk", "/runtime"] });
  ctx.pyVersion = ctx.pyodide.runPython("import sys; '.'.join(map(str, sys.version_info[:3]))");
  expect(ctx.pyVersion.startsWith("3.13."), `Pyodide runs Python ${ctx.pyVersion}, expected 3.13`);
  expect(ctx.cpython.startsWith("3.13."), `CPython is ${ctx.cpython}; the reference must be 3.13 like the runtime`);
  return `Pyodide ${ctx.pyodide.version} (Python ${ctx.pyVersion}, the runtime's for compatibility_date ${config.date}) ` +
    `vs CPython ${ctx.cpython}; workers-runtime-sdk ${SDK_VERSION}${locked ? " = uv.lock's" : ""}`;
}

async function checkCore() {
  const cpython = run(opts.python, [join(REPO, "conformance", "core_events.py")], "core_events.py under CPython");
  const pyodide = ctx.pyodide.runPython("import core_events; core_events.render()");
  return sameBytes("core outputs", cpython, Buffer.from(pyodide, "utf8"));
}

async function checkEntryImports() {
  ctx.pyodide.runPython("import entry, worker_harness");
  // The send-path check drives the Worker's own ports, so entry.py must keep offering them.
  const missing = ctx.pyodide.runPython("import entry; ', '.join(n for n in ('Default', 'D1', 'FetchHttp') if not hasattr(entry, n))");
  expect(!missing, `entry.py no longer defines ${missing}: update conformance/send_path's caller in check.mjs`);
  // relay_tools holds the CPython edges (sqlite3, httpx): the Worker must never import it.
  const local = ctx.pyodide.runPython("import sys; ', '.join(sorted(m for m in sys.modules if m.startswith('relay_tools')))");
  expect(!local, `importing entry.py loaded ${local}: the Worker must not import the CPython edges`);
  const modules = ctx.pyodide.runPython("import sys; len([m for m in sys.modules if m == 'relay' or m.startswith('relay.')])");
  return `entry.py imports with workers-runtime-sdk ${SDK_VERSION} (${modules} relay modules loaded; none of relay_tools)`;
}

function eventPosts(recorded) {
  // Meta requests that carry events; the cron pass may also ask Graph other things (token health).
  return recorded.meta.filter((q) => q.method === "POST" && /\/events$/.test(q.path));
}

function requestsSummary(recorded) {
  return Object.entries(recorded).map(([name, list]) => `${name} ${list.length}`).join(", ");
}

async function checkSendPath() {
  const up = ctx.upstreams;
  const urls = JSON.stringify(up.urls);
  await up.dump();
  const cpython = run(opts.python, [join(REPO, "conformance", "send_path.py"), urls], "send_path.py under CPython");
  const cpythonRequests = await up.dump();
  const db = new D1Database(await ctx.mf.getD1Database("SEND_DB"));
  await migrate(db);
  ctx.pyodide.globals.set("js_env", { DB: db });
  ctx.pyodide.globals.set("urls", urls);
  const pyodide = await ctx.pyodide.runPythonAsync(`
import json, entry, js, scenario, send_path
from pyodide.ffi import to_js
from workers import _EnvWrapper
env = _EnvWrapper(js_env)   # what Default.runtime() gets as self.env
port = entry.D1.of(env.DB)  # Default.runtime()'s port, kept with its prepared statements while the binding is the same
out = scenario.canonical(await send_path.drive(port, entry.FetchHttp(), json.loads(urls)))
assert entry.D1.of(js_env.DB) is port, "D1.of made a new port for the same D1 binding"
assert entry.D1.of(to_js({}, dict_converter=js.Object.fromEntries)) is not port, "D1.of kept a port for another binding"
out
`);
  const pyodideRequests = await up.dump();
  // entry.D1's answers cross as UTF-8 bytes from TextEncoder.encode(holder) (entry._AsJson): workerd's own
  // TextEncoder must read the holder through its toString, as V8's here does.
  const asJson = await (await ctx.mf.dispatchFetch("http://stub/as-json")).text();
  expect(asJson === JSON.stringify([AS_JSON_VALUE]),
    `workerd's TextEncoder.encode(holder) gave ${JSON.stringify(asJson)}, not the box's JSON: entry._AsJson cannot work there`);
  const detail = sameBytes("send-path outputs", cpython, Buffer.from(pyodide, "utf8"));
  sameBytes("requests recorded by the fakes", JSON.stringify(cpythonRequests, null, 1), JSON.stringify(pyodideRequests, null, 1));
  const sent = JSON.parse(pyodide).outbox.filter((row) => row.state === "sent").length;
  expect(sent === 2, `expected both fixture orders sent to Meta, ledger has ${sent} sent`);
  return `${detail}; requests (${requestsSummary(pyodideRequests)}) identical; D1.of kept one port per binding; ` +
    "workerd's TextEncoder reads entry._AsJson's holder";
}

function freshWebhook(which = "webhook-order-paid.raw.json", minutesAgo = 10) {
  // The paid fixture with times inside Meta's 7-day window, signed like Lightspeed signs: md5(body + secret).
  const delivery = JSON.parse(readFileSync(join(REPO, "tests", "fixtures", "lightspeed", "webhook-order-paid.headers.json"), "utf8"));
  const stamp = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "+00:00");
  const now = Date.now();
  const body = readFileSync(join(REPO, "tests", "fixtures", "lightspeed", which), "utf8")
    .replace(/"createdAt":\s*"[^"]*"/, `"createdAt":"${stamp(now - minutesAgo * 60_000)}"`)
    .replace(/"updatedAt":\s*"[^"]*"/, `"updatedAt":"${stamp(now - minutesAgo * 60_000 + 60_000)}"`);
  const bytes = Buffer.from(body, "utf8");
  const signature = createHash("md5").update(Buffer.concat([bytes, Buffer.from(delivery.secret_used_for_signature)])).digest("hex");
  return { bytes, headers: { "Content-Type": "application/json", "X-Shop-Id": delivery.headers["X-Shop-Id"], "X-Signature": signature } };
}

function workerEnv(db, logs) {
  // META_TIMEOUT at its longest (25 s): these checks are about what the Worker does with Meta's answer, and a
  // loopback fake on a loaded machine must not turn into a "Meta did not answer" retry. That was the flake of
  // worker-scheduled: with 1.5 s for a small batch, a starved run timed out on a post the fake had received,
  // so the row stayed "retry" (the check saw Meta's request, but D1 said sent,retry).
  // RELAY_PLAN=paid at the free plan's 50 subrequests: the cron's mechanics without the free plan's CPU model, which
  // (docs/PLANS.md) leaves a webhook's dropped send to a paid plan's cron.
  const shop = JSON.parse(ctx.pyodide.runPython("import json, scenario; json.dumps(scenario.shop_env())"));
  return { ...shop, DB: db, LOGS: logs, META_GRAPH_URL: ctx.upstreams.urls.meta, LIGHTSPEED_API_URL: ctx.upstreams.urls.lightspeed,
    META_TIMEOUT: "25", RELAY_PLAN: "paid", RELAY_SUBREQUEST_BUDGET: "50" };
}

async function invoke(env, request, { dropWaitUntil = false, stores = false } = {}) {
  // One invocation: a fresh ExecutionContext; its waitUntil work is awaited as workerd does after answering.
  const pending = [];
  const dropped = [];
  const context = {
    // Awaiting the Python awaitable starts it at once, as workerd does; a dropped one never runs.
    waitUntil: (work) => (dropWaitUntil ? dropped : pending).push(dropWaitUntil ? work : Promise.resolve(work)),
    passThroughOnException() {},
  };
  const harness = ctx.pyodide.pyimport("worker_harness");
  const response = await harness.fetch(context, env, request);
  const text = await response.text();
  for (const work of dropped) {
    // The isolate died after answering: the work is discarded unstarted; the cron sweep must catch up.
    work.close?.();
    work.destroy?.();
  }
  await settle(pending);
  // (``stores``: the free plan's webhook, which stores and answers; the cron sends)
  if (!dropWaitUntil && !stores && pending.length === 0 && request.method === "POST" && response.status === 200) {
    fail("an accepted webhook handed no work to ctx.waitUntil");
  }
  return { status: response.status, body: text, json: (() => { try { return JSON.parse(text); } catch { return null; } })() };
}

function post(url, webhook) {
  return new Request(url, { method: "POST", headers: webhook.headers, body: webhook.bytes });
}

async function checkWorkerFetch() {
  const up = ctx.upstreams;
  const db = new D1Database(await ctx.mf.getD1Database("WORKER_DB"));
  await migrate(db);
  const logs = new R2Bucket(await ctx.mf.getR2Bucket("LOGS"));
  const env = workerEnv(db, logs);
  ctx.workerEnv = env;
  ctx.workerDb = db;
  ctx.logs = logs;
  await up.dump();
  const base = "https://relay.example.workers.dev";
  const hook = freshWebhook();
  const seen = [];

  let r = await invoke(env, post(`${base}/?shop=vik`, hook));
  seen.push(`signed webhook → ${r.status} ${r.json?.status}`);
  expect(r.status === 200 && r.json?.status === "accepted", `signed webhook: expected 200 accepted, got ${r.status} ${r.body}`);
  let got = await up.dump();
  expect(eventPosts(got).length === 1, `Meta should have one event POST after the webhook, got ${eventPosts(got).length}`);
  const sentBody = JSON.parse(eventPosts(got)[0].body);
  const expected = ctx.pyodide.pyimport("worker_harness").expected_event(new Uint8Array(hook.bytes));
  expect(JSON.stringify(sentBody.data?.length) === "1", "Meta request should carry exactly one event");
  expect(JSON.stringify(sortKeys(sentBody.data[0])) === JSON.stringify(sortKeys(JSON.parse(expected))),
    `the event Meta received differs from what the core builds for this webhook:\n  received ${JSON.stringify(sortKeys(sentBody.data[0]))}\n  expected ${expected}`);
  expect(got.lightspeed.some((q) => q.path.endsWith("/shop.json")), "the currency should come from Lightspeed's shop.json");

  r = await invoke(env, post(`${base}/?shop=vik`, hook));
  seen.push(`same webhook again → ${r.status} ${r.json?.status}`);
  expect(r.status === 200 && r.json?.status === "duplicate", `redelivery: expected 200 duplicate, got ${r.status} ${r.body}`);

  const forged = { bytes: hook.bytes, headers: { ...hook.headers, "X-Signature": "0".repeat(32) } };
  r = await invoke(env, post(`${base}/?shop=vik`, forged));
  seen.push(`wrong signature → ${r.status}`);
  expect(r.status === 401, `wrong signature: expected 401, got ${r.status} ${r.body}`);

  r = await invoke(env, post(`${base}/?shop=nosuchshop`, hook));
  seen.push(`unknown shop → ${r.status}`);
  expect(r.status === 404, `unknown shop: expected 404, got ${r.status} ${r.body}`);

  const notJson = { bytes: Buffer.from("not json"), headers: {} };
  notJson.headers = { ...hook.headers, "X-Signature": createHash("md5").update(Buffer.concat([notJson.bytes, Buffer.from(JSON.parse(ctx.pyodide.runPython("import json, scenario; json.dumps(scenario.SECRET)")))])).digest("hex") };
  r = await invoke(env, post(`${base}/?shop=vik`, notJson));
  seen.push(`signed non-JSON → ${r.status}`);
  expect(r.status === 400, `signed non-JSON body: expected 400, got ${r.status} ${r.body}`);

  r = await invoke(env, new Request(`${base}/health`));
  seen.push(`GET /health → ${r.status}`);
  expect(r.status === 200, `GET /health: expected 200, got ${r.status}`);
  r = await invoke(env, new Request(`${base}/?shop=vik`));
  seen.push(`GET / → ${r.status}`);
  expect(r.status === 405, `GET /: expected 405, got ${r.status}`);

  // A credential header sent twice: the Worker's Headers join the values with ", ", the core refuses it.
  for (const name of ["X-Signature", "X-Shop-Id"]) {
    const twice = new Headers(hook.headers);
    twice.append(name, hook.headers[name]);
    r = await invoke(env, new Request(`${base}/?shop=vik`, { method: "POST", headers: twice, body: hook.bytes }));
    seen.push(`${name} twice → ${r.status}`);
    expect(r.status === 401 && r.body.includes(`${name} more than once`), `${name} twice: expected 401, got ${r.status} ${r.body}`);
  }
  seen.push(await checkAdminSession(env, base));

  // The thank-you script's post: 204 with no body (a Response with a body and 204 throws in workerd), the
  // shopper's address from CF-Connecting-IP, and the script itself served as JavaScript.
  const thankYou = { order_number: "ORD99999", consent: "granted", fbp: "fb.1.1763498500123.1116446470" };
  r = await invoke(env, new Request(`${base}/bridge?shop=vik`, { method: "POST", body: JSON.stringify(thankYou),
    headers: { "Content-Type": "text/plain", "CF-Connecting-IP": "2001:db8::7", "User-Agent": "ConformanceBrowser/1.0" } }));
  seen.push(`bridge post → ${r.status}`);
  expect(r.status === 204 && r.body === "", `bridge post: expected 204 without a body, got ${r.status} ${r.body}`);
  const bridged = (await db.prepare("SELECT ip, user_agent, fbp FROM bridge").all()).results;
  expect(bridged.length === 1 && bridged[0].ip === "2001:db8::7" && bridged[0].user_agent === "ConformanceBrowser/1.0"
    && bridged[0].fbp === thankYou.fbp, `bridge row should hold the post with CF-Connecting-IP, has ${JSON.stringify(bridged)}`);
  // Rotating addresses inside one IPv6 /64 (what one subscriber gets) is one client for the bridge's limit:
  // 20 posts a minute from the /64, then 429; the next /64 is another client.
  // The limit counts per clock minute: start early in a minute, so the 21 posts cannot straddle two of them.
  if (Date.now() % 60000 > 30000) await new Promise((r) => setTimeout(r, 60000 - (Date.now() % 60000) + 50));
  const rotated = [];
  for (let n = 1; n <= 21; n++) {
    r = await invoke(env, new Request(`${base}/bridge?shop=vik`, { method: "POST",
      body: JSON.stringify({ order_number: `ORD${88000 + n}`, consent: "unknown" }),
      headers: { "Content-Type": "text/plain", "CF-Connecting-IP": `2001:db8:77:1::${n.toString(16)}` } }));
    rotated.push(r.status);
  }
  seen.push(`21 bridge posts from one IPv6 /64 → ${rotated.filter((s) => s === 204).length}×204, ${rotated.filter((s) => s === 429).length}×429`);
  expect(rotated.slice(0, 20).every((s) => s === 204) && rotated[20] === 429,
    `posts rotating inside one IPv6 /64: expected 20 × 204 then 429, got ${rotated.join(",")}`);
  r = await invoke(env, new Request(`${base}/bridge?shop=vik`, { method: "POST",
    body: JSON.stringify({ order_number: "ORD88999", consent: "unknown" }),
    headers: { "Content-Type": "text/plain", "CF-Connecting-IP": "2001:db8:77:2::1" } }));
  seen.push(`the next /64 → ${r.status}`);
  expect(r.status === 204, `a post from another /64: expected 204, got ${r.status}`);
  r = await invoke(env, new Request(`${base}/bridge.js?shop=vik`));
  seen.push(`GET /bridge.js → ${r.status}`);
  expect(r.status === 200 && r.body.includes("/bridge?shop="), `GET /bridge.js: expected 200 and the script, got ${r.status}`);

  got = await up.dump();
  expect(got.meta.length === 0, `nothing after the first webhook may reach Meta, got ${got.meta.length} request(s)`);
  const rows = (await db.prepare("SELECT order_id, state, payload FROM outbox").all()).results;
  expect(rows.length === 1 && rows[0].state === "sent", `D1 ledger should hold one sent row, has ${JSON.stringify(rows.map((x) => x.state))}`);
  const pii = piiStrings(hook.bytes);
  const leaked = pii.filter((s) => rows[0].payload.includes(s));
  expect(leaked.length === 0, `the D1 ledger keeps raw customer data: ${leaked.length} value(s)`);
  const logText = await readLogs(logs);
  expect(logText.length > 0, "no delivery log was written to R2");
  const logLeaks = pii.filter((s) => logText.includes(s));
  expect(logLeaks.length === 0, `the R2 delivery log holds raw customer data: ${logLeaks.length} value(s)`);
  seen.push(await checkBridgeBinding(base));
  return `${seen.join("; ")}; Meta got 1 event = core's; D1 row sent; R2 log clean`;
}

async function checkBridgeBinding(base) {
  // Another order, on a D1 of its own: a stranger's post, then the post of the browser that placed it (the
  // order's userAgent, its total), then its webhook. The event carries the second post's fbp and address, the
  // first decides nothing, and both posts are settled with no IP address or user agent left.
  const db = new D1Database(await ctx.mf.getD1Database("BRIDGE_DB"));
  await migrate(db);
  const env = workerEnv(db, ctx.logs);
  const fixture = JSON.parse(readFileSync(join(REPO, "tests", "fixtures", "lightspeed", "webhook-order-paid.json"), "utf8"));
  const hook = freshWebhook();
  const text = hook.bytes.toString("utf8").replace('"id":384271665,', '"id":384271699,').replace('"number":"ORD04217"', '"number":"ORD04299"');
  const bytes = Buffer.from(text, "utf8");
  const secret = JSON.parse(ctx.pyodide.runPython("import json, scenario; json.dumps(scenario.SECRET)"));
  const headers = { ...hook.headers, "X-Signature": createHash("md5").update(Buffer.concat([bytes, Buffer.from(secret)])).digest("hex") };
  const bridgePost = (body, ip, agent) => invoke(env, new Request(`${base}/bridge?shop=vik`, { method: "POST",
    body: JSON.stringify({ order_number: "ORD04299", consent: "granted", value: 140.4, ...body }),
    headers: { "Content-Type": "text/plain", "CF-Connecting-IP": ip, "User-Agent": agent } }));
  const theirs = "fb.1.1763400000000.666666666", ours = "fb.1.1763498500123.1116446470";
  let r = await bridgePost({ fbp: theirs }, "2001:db8:5::1", "Mozilla/5.0 (X11; Linux x86_64) Stranger/1.0");
  expect(r.status === 204, `stranger's bridge post: expected 204, got ${r.status}`);
  r = await bridgePost({ fbp: ours }, "2001:db8:6::2", fixture.order.userAgent);
  expect(r.status === 204, `shopper's bridge post: expected 204, got ${r.status}`);
  await ctx.upstreams.dump();
  r = await invoke(env, new Request(`${base}/?shop=vik`, { method: "POST", headers, body: bytes }));
  expect(r.status === 200 && r.json?.status === "accepted", `second order's webhook: expected 200 accepted, got ${r.status} ${r.body}`);
  const posted = eventPosts(await ctx.upstreams.dump());
  expect(posted.length === 1, `the second order should reach Meta once, got ${posted.length} request(s)`);
  const user = JSON.parse(posted[0].body).data[0].user_data;
  expect(user.fbp === ours && user.client_ip_address === "2001:db8:6::2" && user.client_user_agent === fixture.order.userAgent,
    `the event should carry the shopper's post (fbp, address, agent), has fbp ${user.fbp}, ip ${user.client_ip_address}`);
  const rows = (await db.prepare("SELECT fbp, ip, user_agent, binding, verdict FROM bridge WHERE order_number = 'ORD04299' ORDER BY id").all()).results;
  const settled = rows.map((x) => `${x.binding}/${x.verdict}`).join(",");
  expect(settled === "agent/agent,bound/attached" && rows.every((x) => x.ip === null && x.user_agent === null),
    `bridge rows on D1 should be settled (agent/agent, bound/attached) with no IP or agent, are ${JSON.stringify(rows)}`);
  return `stranger's post then the shopper's, then the webhook → Meta got the shopper's fbp and address; D1 posts ${settled}; `
    + await checkHeldOrder(env, base, hook, secret, fixture, ours);
}

async function checkHeldOrder(env, base, hook, secret, fixture, ours) {
  // A third order, its webhook first and held for its post (BRIDGE_WAIT): each post is decided and written in one
  // D1 call (relay.outbox.bridge_take), on D1's own SQLite: the stranger's is not kept, the shopper's (its agent,
  // its total to the cent, 140.40 for 140.4) is kept bound and makes the held order due, which its waitUntil sends.
  const held = { ...env, VIK_BRIDGE_WAIT: "120" };
  const text = hook.bytes.toString("utf8").replace('"id":384271665,', '"id":384271698,').replace('"number":"ORD04217"', '"number":"ORD04298"');
  const bytes = Buffer.from(text, "utf8");
  const headers = { ...hook.headers, "X-Signature": createHash("md5").update(Buffer.concat([bytes, Buffer.from(secret)])).digest("hex") };
  const post = (body, ip, agent) => invoke(held, new Request(`${base}/bridge?shop=vik`, { method: "POST",
    body: JSON.stringify({ order_number: "ORD04298", consent: "granted", ...body }),
    headers: { "Content-Type": "text/plain", "CF-Connecting-IP": ip, "User-Agent": agent } }));
  await ctx.upstreams.dump();
  let r = await invoke(held, new Request(`${base}/?shop=vik`, { method: "POST", headers, body: bytes }));
  expect(r.status === 200, `the held order's webhook: expected 200, got ${r.status} ${r.body}`);
  r = await post({ fbp: "fb.1.1763400000000.666666666", value: "140.4" }, "2001:db8:8::1", "Mozilla/5.0 Stranger/2.0");
  expect(r.status === 204, `stranger's post for the held order: expected 204, got ${r.status}`);
  expect(eventPosts(await ctx.upstreams.dump()).length === 0, "a stranger's post must not release the held order");
  r = await post({ fbp: ours, value: "140.40" }, "2001:db8:9::2", fixture.order.userAgent);
  expect(r.status === 204, `shopper's post for the held order: expected 204, got ${r.status}`);
  const posted = eventPosts(await ctx.upstreams.dump());
  expect(posted.length === 1 && JSON.parse(posted[0].body).data[0].user_data.fbp === ours,
    `the shopper's bound post should send the held order once with its fbp, got ${posted.length} request(s)`);
  const db = held.DB;
  const rows = (await db.prepare("SELECT binding, verdict FROM bridge WHERE order_number = 'ORD04298'").all()).results;
  const kept = rows.map((x) => `${x.binding}/${x.verdict}`).join(",");
  expect(kept === "bound/attached", `D1 should keep only the shopper's post, bound and attached, has ${kept}`);
  return `held order: stranger's post not kept, the shopper's sent it (D1 posts ${kept})`;
}

async function checkAdminSession(workerEnv, base) {
  // Sign in through the form, sign out, and the old cookie is dead: the session lives in D1 (migration 0008).
  const env = { ...workerEnv, ADMIN_TOKEN: "conformance-admin-token-signin-0001" };
  const form = (fields, headers = {}) => new Request(`${base}/dashboard`, {
    method: "POST", body: new URLSearchParams(fields).toString(),
    headers: { "Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin", ...headers } });
  const raw = async (request) => {
    const context = { waitUntil() {}, passThroughOnException() {} };
    const response = await ctx.pyodide.pyimport("worker_harness").fetch(context, env, request);
    return { status: response.status, cookie: response.headers.get("set-cookie"), body: await response.text() };
  };
  let r = await raw(form({ token: env.ADMIN_TOKEN }, { Origin: base }));
  expect(r.status === 303 && r.cookie, `sign-in: expected 303 with a cookie, got ${r.status} ${r.body}`);
  const cookie = r.cookie.split(";")[0];
  const page = () => raw(new Request(`${base}/dashboard`, { headers: { Cookie: cookie } }));
  r = await page();
  const csrf = /name="csrf" value="([0-9a-f]{64})"/.exec(r.body)?.[1];
  expect(r.status === 200 && csrf, `signed-in page: expected 200 with a CSRF field, got ${r.status}`);
  r = await raw(form({ action: "logout", csrf }, { Cookie: cookie, Origin: "https://evil.example" }));
  expect(r.status === 403 && !r.cookie, `cross-site sign-out: expected 403 and no cookie, got ${r.status}`);
  r = await raw(form({ action: "logout", csrf }, { Cookie: cookie, Origin: base }));
  expect(r.status === 303 && r.cookie?.includes("Max-Age=0"), `sign-out: expected 303 clearing the cookie, got ${r.status}`);
  r = await page();
  expect(r.status === 401, `the signed-out cookie must be refused, got ${r.status}`);
  r = await raw(new Request(`${base}/status`, { headers: [["Authorization", `Bearer ${env.ADMIN_TOKEN}`],
                                                         ["Authorization", `Bearer ${env.ADMIN_TOKEN}`]] }));
  expect(r.status === 401 && r.body.includes("Authorization more than once"), `Authorization twice: expected 401, got ${r.status}`);
  return "admin sign-in, cross-site sign-out 403, sign-out ends the D1 session, Authorization twice 401";
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
  }
  return value;
}

function piiStrings(bytes) {
  const order = JSON.parse(bytes.toString("utf8")).order;
  return [order.email, order.phone, order.mobile, order.lastname, order.remoteIp, order.addressBillingZipcode]
    .filter((v) => typeof v === "string" && v.length > 3);
}

async function readLogs(logs) {
  const listing = await logs.list({ prefix: "logs/" });
  let text = "";
  for (const obj of listing.objects) text += await (await logs.get(obj.key)).text();
  return text;
}

async function checkWorkerScheduled() {
  const up = ctx.upstreams;
  const env = ctx.workerEnv;
  const hook = freshWebhook("webhook-order-paid-missing-optional.json", 20);
  await up.dump();
  const r = await invoke(env, post("https://relay.example.workers.dev/?shop=vik", hook), { dropWaitUntil: true });
  expect(r.status === 200 && r.json?.status === "accepted", `webhook: expected 200 accepted, got ${r.status} ${r.body}`);
  let got = await up.dump();
  expect(got.meta.length === 0, "the dropped waitUntil work still reached Meta");
  const context = { waitUntil() {}, passThroughOnException() {} };
  await ctx.pyodide.pyimport("worker_harness").scheduled(context, env,
    { cron: "*/10 * * * *", scheduledTime: Date.now(), type: "scheduled" });
  got = await up.dump();
  const posts = eventPosts(got);
  expect(posts.length === 1, `the cron pass should send the waiting order in one request, Meta got ${posts.length}`);
  const ids = JSON.parse(posts[0].body).data.map((e) => e.event_id);
  expect(JSON.stringify(ids) === JSON.stringify([r.json.event_id]), `the sweep sent ${ids}, expected ${r.json.event_id}`);
  const products = got.lightspeed.filter((q) => q.path.endsWith("/products.json")).length;
  expect(products === 1, `the sweep should fetch the order's products once (no embedded lines), fetched ${products}`);
  const rows = (await ctx.workerDb.prepare("SELECT state, last_error FROM outbox ORDER BY order_id").all()).results;
  const states = rows.map((x) => x.state);
  expect(JSON.stringify(states) === '["sent","sent"]',
    `D1 ledger states after the sweep: ${states} (${rows.map((x) => x.last_error).filter(Boolean).join("; ") || "no error"})`);
  const other = [...got.meta, ...got.lightspeed].filter((q) => !posts.includes(q)).map((q) => `${q.method} ${q.path}`);
  return `webhook answered, its waitUntil work dropped; scheduled() sent ${ids} with products from Lightspeed; ` +
    `D1 ${states}; other upstream calls: ${other.join(", ") || "none"}`;
}

async function checkFreeLogSpool() {
  // The free plan stages the webhook's and the thank-you post's log lines in their one D1 call, with the ledger's
  // answer filled in by SQL (changes(), last_insert_rowid()), and a sending pass stages its own lines in its finish;
  // later passes copy them to R2, each shop's lines joined in id order by a window group_concat. Those SQL
  // functions are what SQLite answers in tests; here workerd's own D1 answers them (relay.outbox.log_spool).
  const up = ctx.upstreams;
  const db = new D1Database(await ctx.mf.getD1Database("SPOOL_DB"));
  await migrate(db);
  const logs = new R2Bucket(await ctx.mf.getR2Bucket("SPOOL_LOGS"));
  const env = { ...workerEnv(db, logs), RELAY_PLAN: "free" };
  delete env.RELAY_SUBREQUEST_BUDGET;
  const base = "https://relay.example.workers.dev";
  const hook = freshWebhook();
  const staged = async () => (await db.prepare("SELECT COUNT(*) AS n FROM log_spool").first()).n;
  await up.dump();
  let r = await invoke(env, post(`${base}/?shop=vik`, hook), { stores: true });
  expect(r.status === 200 && r.json?.status === "accepted", `free webhook: expected 200 accepted, got ${r.status} ${r.body}`);
  r = await invoke(env, post(`${base}/?shop=vik`, hook), { stores: true });
  expect(r.status === 200 && r.json?.status === "duplicate", `free redelivery: expected 200 duplicate, got ${r.status} ${r.body}`);
  r = await invoke(env, new Request(`${base}/bridge?shop=vik`, { method: "POST",
    body: JSON.stringify({ order_number: "ORD77777", consent: "granted" }),
    headers: { "Content-Type": "text/plain", "CF-Connecting-IP": "2001:db8:5::1" } }));
  expect(r.status === 204, `free bridge post: expected 204, got ${r.status}`);
  const before = await staged();
  const written = (await logs.list({ prefix: "logs/" })).objects.length;
  expect(before === 3 && written === 0, `free webhook, redelivery and post: expected 3 staged rows and no R2 object, got ${before} and ${written}`);
  // Lightspeed lists the webhook's order (the ledger has it: no line) and one no webhook brought (with its lines):
  // the listing pass stages the new order's decision and the page's listing line in the page's batch
  // (relay.outbox.log_spool.page: changes() after each UPSERT), with no R2 put of its own
  const webhookOrder = JSON.parse(hook.bytes.toString("utf8")).order;
  const missed = JSON.parse(freshWebhook("webhook-order-paid.raw.json", 20).bytes.toString("utf8")).order;
  Object.assign(missed, { id: missed.id + 1, number: `${missed.number}B` });
  await up.list([webhookOrder, missed]);
  const context = { waitUntil() {}, passThroughOnException() {} };
  let passes = 0;
  let listingPuts = 0;
  let sent = eventPosts(await up.dump()).length;
  while (passes < 16 && ((await staged()) > 0 || sent < 2)) {
    const objects = (await logs.list({ prefix: "logs/" })).objects.length;
    const listed = (await db.prepare("SELECT COUNT(*) AS n FROM outbox").first()).n;
    await ctx.pyodide.pyimport("worker_harness").scheduled(context, env,
      { cron: "*/2 * * * *", scheduledTime: Date.now(), type: "scheduled" });
    passes += 1;
    sent += eventPosts(await up.dump()).length;
    if ((await db.prepare("SELECT COUNT(*) AS n FROM outbox").first()).n > listed) {
      listingPuts += (await logs.list({ prefix: "logs/" })).objects.length - objects;
    }
  }
  await up.list([]);
  expect(sent === 2, `the free cron should send the webhook's order and the listed one once each, Meta got ${sent} event request(s)`);
  expect(listingPuts === 0, `the pass that listed the missed order wrote ${listingPuts} R2 object(s) itself`);
  expect((await staged()) === 0, `the free cron passes left ${await staged()} staged row(s) after ${passes} passes`);
  const lines = (await readLogs(logs)).split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const decisions = lines.filter((l) => l.kind === "decision" && l.source === "webhook").map((l) => l.state);
  expect(JSON.stringify(decisions) === '["due","unchanged"]', `staged decision lines, in order: expected due, unchanged; got ${JSON.stringify(decisions)}`);
  const postLine = lines.filter((l) => l.kind === "bridge");
  expect(postLine.length === 1 && /order not known yet/.test(postLine[0].reason), `the post's staged line: ${JSON.stringify(postLine)}`);
  const attempts = lines.filter((l) => l.kind === "attempt" && l.verdict === "sent");
  expect(attempts.length === 2, `the sending passes' attempt lines should reach R2 once each, found ${attempts.length}`);
  const backfill = lines.filter((l) => l.kind === "decision" && l.source === "backfill").map((l) => `${l.order_number} ${l.state}`);
  expect(JSON.stringify(backfill) === JSON.stringify([`${missed.number} due`]),
    `the listing's staged decision lines: expected only the missed order's (due), got ${JSON.stringify(backfill)}`);
  const listingLines = lines.filter((l) => l.kind === "listing");
  expect(listingLines.length === 1 && listingLines[0].events === 2, `the page's listing line: ${JSON.stringify(listingLines)}`);
  // entry.R2 itself (bytes across the bridge, not text): it reads back what the passes wrote, and what it writes,
  // non-ASCII included, reads back byte for byte through R2's own JS client.
  ctx.pyodide.globals.set("js_logs", logs);
  const [viaPort, roundTrip] = (await ctx.pyodide.runPythonAsync(`
import entry
r2 = entry.R2(js_logs)
text = b"".join([await r2.get(k) for k in await r2.list("logs/")]).decode()
await r2.put("roundtrip/r2.ndjson", '{"reason": "besteld \\u00e9 \\U0001f600"}\\n'.encode())
assert await r2.get("roundtrip/missing") is None, "R2.get of a missing key should be None"
[text, (await r2.get("roundtrip/r2.ndjson")).decode()]
`)).toJs();
  const expected = '{"reason": "besteld \u00e9 \u{1f600}"}\n';
  expect(viaPort === await readLogs(logs), "entry.R2.get read the log objects differently from R2's own client");
  const direct = await (await logs.get("roundtrip/r2.ndjson")).text();
  expect(roundTrip === expected && direct === expected, `entry.R2 round trip: wrote ${JSON.stringify(expected)}, read ${JSON.stringify(roundTrip)} (port) and ${JSON.stringify(direct)} (R2)`);
  return `webhook, redelivery and post staged 3 rows, no R2 put; ${passes} cron passes listed a page (its lines staged, ` +
    `no R2 put), sent both orders once and copied every row: decisions ${decisions.join(", ")}, the listed order's, ` +
    `the page's listing line, the post's line, two attempt lines; entry.R2 round trip identical`;
}

async function checkOrdersApi() {
  const up = ctx.upstreams;
  const urls = JSON.stringify(up.urls);
  await up.dump();
  const cpython = run(opts.python, [join(REPO, "conformance", "orders_api.py"), urls], "orders_api.py under CPython");
  const cpythonIds = eventPosts(await up.dump()).flatMap((q) => JSON.parse(q.body).data.map((e) => e.event_id));
  const db = new D1Database(await ctx.mf.getD1Database("ORDERS_DB"));
  await migrate(db);
  ctx.pyodide.globals.set("urls", urls);
  const env = {
    ...JSON.parse(ctx.pyodide.runPython("import json, orders_api; u = json.loads(urls); " +
      "json.dumps(orders_api.env(u['meta'], u['lightspeed']))")),
    DB: db, LOGS: ctx.logs,
  };
  const base = "https://relay.example.workers.dev";
  // One Worker invocation per request, its waitUntil work awaited as workerd awaits it after answering.
  const call = async (method, path, headers, body) => {
    const init = { method, headers: JSON.parse(headers) };
    if (body !== undefined && body !== null) init.body = body;
    const r = await invoke(env, new Request(base + path, init));
    return JSON.stringify({ status: r.status, json: r.json });
  };
  ctx.pyodide.globals.set("js_call", call);
  ctx.pyodide.globals.set("js_env", { DB: db });
  const pyodide = await ctx.pyodide.runPythonAsync(`
import json, entry, orders_api, scenario
from pyodide.ffi import to_js
from workers import _EnvWrapper

async def call(method, path, headers, body):
    answer = json.loads(await js_call(method, path, json.dumps(headers), None if body is None else to_js(body)))
    return answer["status"], answer["json"]

scenario.canonical(await orders_api.drive(call, entry.D1(_EnvWrapper(js_env).DB)))
`);
  const pyodideIds = eventPosts(await up.dump()).flatMap((q) => JSON.parse(q.body).data.map((e) => e.event_id));
  const detail = sameBytes("orders API answers", cpython, Buffer.from(pyodide, "utf8"));
  sameBytes("events Meta received", JSON.stringify(cpythonIds), JSON.stringify(pyodideIds));
  const replayed = pyodideIds.filter((id) => id === "purchase_ORDB2").length;
  expect(replayed === 2, `ORDB2 should reach Meta twice (its webhook, its replay), reached it ${replayed} times`);
  const steps = Object.keys(JSON.parse(pyodide)).length;
  return `${steps} answers (401 ×4, 404 ×2, pages, refusals cancelled/waiting/outside window/unknown, 400s, 405) ` +
    `identical; ${detail}; Meta got ${pyodideIds.length} events in both (${replayed}× ORDB2: webhook + replay)`;
}

// --- main ------------------------------------------------------------------------------------------

const CHECKS = [
  ["runtime", checkRuntime],
  ["core-identical", checkCore],
  ["entry-imports", checkEntryImports],
  ["send-path", checkSendPath],
  ["worker-fetch", checkWorkerFetch],
  ["worker-scheduled", checkWorkerScheduled],
  ["free-log-spool", checkFreeLogSpool],
  ["orders-api", checkOrdersApi],
];

const results = [];
let blocked = null;
try {
  for (const [name, check] of CHECKS) {
    if (blocked) {
      results.push({ name, ok: false, detail: `not run: ${blocked} failed first` });
      continue;
    }
    const started = Date.now();
    try {
      if (name === "send-path") {
        ctx.upstreams = await new Upstreams().start();
        ctx.mf = await startMiniflare();
      }
      const detail = await Promise.race([check(), new Promise((_, reject) => {
        setTimeout(() => reject(new Error(`no result after ${CHECK_TIMEOUT_S} s: something awaits forever`)),
          CHECK_TIMEOUT_S * 1000).unref();
      })]);
      results.push({ name, ok: true, detail, ms: Date.now() - started });
    } catch (error) {
      results.push({ name, ok: false, detail: String(error?.message ?? error), ms: Date.now() - started });
      if (name === "runtime" || name === "entry-imports") blocked = name;
    }
  }
} finally {
  ctx.upstreams?.stop();
  await ctx.mf?.dispose();
}

for (const r of results) {
  console.log(`${r.ok ? "PASS" : "FAIL"} ${r.name.padEnd(17)} ${r.detail.split("\n").join("\n     ")}`);
}
const failed = results.filter((r) => !r.ok).length;
console.log(`conformance: ${results.length - failed} of ${results.length} checks passed` +
  (failed ? `, ${failed} FAILED` : ""));
if (opts.json) {
  writeFileSync(opts.json, JSON.stringify({ pyodide: PYODIDE_VERSION, python: ctx.pyVersion, cpython: ctx.cpython, checks: results }, null, 1));
}
process.exit(failed ? 1 : 0);
