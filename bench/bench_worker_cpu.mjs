#!/usr/bin/env node
// CPU per invocation of the Worker's own Python: src/entry.py's `entry.Default` in Pyodide 0.28.2 with the real
// workers-runtime-sdk, driven as workerd drives it, for every kind of invocation the relay serves.
//
//   uv run node bench/bench_worker_cpu.mjs [--quick] [--repo PATH] [--profile KIND | --py-profile KIND]
//                                          [--env NAME=VALUE ...]
//                                          [--orders N] [--embedded] [--kinds a,b,...] [--json OUT]
//   (or: uv run python bench/bench_worker_cpu.py with the same options)
//
// How it measures (issue 19, part 1):
// - One Node process (this one) runs Pyodide, the SDK and the relay; `fetch(request)` gets a JS Request through
//   workers.python_from_rpc, `scheduled(controller)` the raw controller, each with a fresh ExecutionContext whose
//   waitUntil promises are awaited, as workerd does after answering.
// - D1, R2 and outbound fetch are NOT in this process: a child process (this file with --store) holds miniflare
//   (D1 + R2 on workerd) and does the HTTP to the fakes; the Worker gets thin bindings named and shaped like
//   workerd's (D1Database.prepare → D1PreparedStatement with bind returning a new statement, all/run/first/raw,
//   batch; R2Bucket put/get/head/list/delete; globalThis.fetch → a Response) that forward each call over Node's
//   IPC channel. Only that shim's own cost lands here; it is measured per call and printed, and the "thread less
//   shim" column subtracts each invocation's own calls at it.
//   Meta and Lightspeed are relay_tools.fakes in a CPython process (bench/bench_worker_cpu.py --serve).
// - CPU per invocation is process.cpuUsage() (user + system, all threads: V8's GC and compiler threads
//   included, so it errs high) around the call and all of its waitUntil work, after warm-up; "thread" is the
//   main thread alone (/proc/self/task/<pid>/schedstat), the isolate's thread: what Cloudflare counts against
//   the plan's limit (the runtime reads the thread's CPU clock before and after calling into the Worker, and
//   has the OS signal that thread at the limit: Kenton Varda, Workers' lead, at
//   community.cloudflare.com/t/how-is-cpu-time-per-request-measured-in-cloudflare-workers/49964). It still
//   holds the shim's own cost. --json keeps every invocation's [process, thread] pair. Figures only: nothing
//   here is asserted on time.
//
// Kinds (in this order; "first" is the first invocation of the kind in this process):
//   webhook        a signed paid-order webhook for a new order (accept + the waitUntil send), 30 orders
//   bridge         POST /bridge: a thank-you post (204), a new order number and address each time
//   cron-idle      scheduled() with nothing to list or send (3 shops, after their daily checks)
//   cron-busy      scheduled() over 3 shops x 300 orders no webhook delivered, pass after pass until drained;
//                  the first pass (daily checks + a 250-order page) is shown apart
//   dashboard      GET /dashboard (bearer) over the drained ledger: 900 orders, 3 shops (--shops N: N shops)
//   status         GET /status over the same ledger
//   orders         GET /orders?shop=… (50 rows; --orders-limit N asks for ?limit=N)
//   cron-copy      (only when named in --kinds) scheduled() with nothing to send and --spool-rows N (200) delivery-log
//                  lines staged in D1 a while ago over 3 shops: the pass that copies them to R2 (relay.jobs.spool_copy;
//                  the rows a pass reads at most are relay.outbox.log_spool.LIMIT)
//   replay         (only when named in --kinds) POST /orders/replay of one sent order over the drained ledger
//   floor          (only when named in --kinds) the same SDK wrapping, Pyodide call and adapter with none of the relay's
//                  work: fetch() answering 204 at once; scheduled() returning at once, or making one call of the
//                  adapter's ports (one D1 statement, a D1 batch of 8, one fetch): what every other row stands on
//
// Each kind's line also says in how many measured invocations Python's cyclic GC ran, and its longest run (wall ms,
// inside the figures); the end prints the whole run's collections by generation. A collection in Pyodide costs
// ~1.2 ms per ~1,850 objects it frees: a path that leaves reference cycles pays for them here.
//
// --py-profile KIND runs that kind's measured invocations under Python's cProfile (inside Pyodide) and prints
// the top functions by own time and by cumulative time: which Python (ours, the SDK's, asyncio) the CPU is in.
//
// --profile KIND runs that kind under V8's sampling profiler (the inspector, in-process), prints the top frames
// by self time and a grouping (Python interpreter / Pyodide's JS<->Python bridge / GC / Node + the bench's
// shim / other), and writes the .cpuprofile (open it in Chrome DevTools) to a temporary path.

import { fork } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import {
  JsonLinesChild, REPO as HOME, SDK_DIR, SDK_VERSION, ensureSdk, fail, readMigrations, run as runBytes, settle,
  splitStatements, startMiniflare, startPyodide,
} from "../conformance/pyodide_worker.mjs";   // Pyodide + SDK + miniflare set up as conformance/check.mjs does

const KINDS = ["webhook", "bridge", "cron-idle", "cron-busy", "dashboard", "status", "orders"];
const OPTIONAL_KINDS = ["cron-copy", "floor", "replay"];      // measured only when asked for by --kinds
const ADMIN = "bench-admin-token-0123456789abcdef";
const BASE = "https://relay.example.workers.dev";


// =====================================================================================================
// The store process: miniflare's D1 and R2, and outbound fetch, answering the measured process over IPC.
// =====================================================================================================

async function storeMain() {
  const mf = await startMiniflare("bench", {
    d1Databases: { A: "bench-worker-cpu-a", B: "bench-worker-cpu-b" },
    r2Buckets: { LOGS: "bench-worker-cpu-logs" },
  });
  const dbs = { A: await mf.getD1Database("A"), B: await mf.getD1Database("B") };
  const bucket = await mf.getR2Bucket("LOGS");
  const plain = (value) => (value === undefined ? null : JSON.parse(JSON.stringify(value)));
  const objectFields = (o) => (o ? { key: o.key, version: o.version, size: o.size, etag: o.etag, httpEtag: o.httpEtag,
    uploaded: o.uploaded?.toISOString?.() ?? null, httpMetadata: plain(o.httpMetadata), customMetadata: plain(o.customMetadata) } : null);
  const statement = (db, { sql, params }) => (params?.length ? db.prepare(sql).bind(...params) : db.prepare(sql));
  const handlers = {
    async d1({ db, kind, sql, params, arg }) {
      const s = statement(dbs[db], { sql, params });
      if (kind === "first") return plain(await (arg === undefined ? s.first() : s.first(arg)));
      return plain(await s[kind](arg));
    },
    async d1batch({ db, statements }) {
      return plain(await dbs[db].batch(statements.map((s) => statement(dbs[db], s))));
    },
    async d1exec({ db, sql }) { return plain(await dbs[db].exec(sql)); },
    async migrate({ db, files }) {
      for (const sql of files) await dbs[db].batch(splitStatements(sql).map((s) => dbs[db].prepare(s)));
      return files.length;
    },
    async r2({ method, args }) {
      if (method === "put") return objectFields(await bucket.put(...args));
      if (method === "head") return objectFields(await bucket.head(...args));
      if (method === "delete") { await bucket.delete(...args); return null; }
      if (method === "list") {
        const l = await bucket.list(...args);
        return { objects: l.objects.map(objectFields), truncated: l.truncated, cursor: l.cursor ?? null,
          delimitedPrefixes: l.delimitedPrefixes ?? [] };
      }
      const o = await bucket.get(...args);
      return o ? { ...objectFields(o), body: new Uint8Array(await o.arrayBuffer()) } : null;
    },
    async fetch({ url, method, headers, body }) {
      const r = await fetch(url, { method, headers, body: body ?? undefined });
      return { status: r.status, statusText: r.statusText, headers: [...r.headers],
        body: new Uint8Array(await r.arrayBuffer()) };
    },
    async ping() { return null; },
  };
  process.on("message", async (m) => {
    try {
      process.send({ id: m.id, ok: true, value: await handlers[m.op](m) });
    } catch (error) {
      process.send({ id: m.id, ok: false, error: String(error?.message ?? error) });
    }
  });
  process.on("disconnect", async () => { await mf.dispose(); process.exit(0); });
  process.send({ ready: true });
}

// =====================================================================================================
// The measured process: the shim bindings.
// =====================================================================================================

const calls = { fetch: 0, d1: 0, r2: 0, d1batch: 0 };   // d1 counts every D1 call, d1batch the batches among them

class Store {
  async start() {
    this.child = fork(fileURLToPath(import.meta.url), ["--store"], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.pending = new Map();
    this.next = 0;
    await new Promise((ready, failed) => {
      this.child.once("exit", (code) => failed(new Error(`the store process (miniflare) exited ${code}`)));
      this.child.on("message", (m) => {
        if (m.ready) return ready();
        const waiting = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.ok) waiting.resolve(m.value); else waiting.reject(new Error(m.error));
      });
    });
    return this;
  }
  call(message) {
    const id = (this.next += 1);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send({ ...message, id });
    });
  }
  stop() {
    this.child?.disconnect();
  }
}

// Named as workerd names them: the SDK picks its binding wrapper by JS constructor name.
class D1PreparedStatement {
  constructor(db, sql, params = []) { this.db = db; this.sql = sql; this.params = params; }
  bind(...values) { return new D1PreparedStatement(this.db, this.sql, values); }
  _call(kind, arg) {
    calls.d1 += 1;
    return this.db.store.call({ op: "d1", db: this.db.name, kind, sql: this.sql, params: this.params, arg });
  }
  all() { return this._call("all"); }
  run() { return this._call("run"); }
  first(column) { return this._call("first", column); }
  raw(options) { return this._call("raw", options); }
}

class D1Database {
  constructor(store, name) { this.store = store; this.name = name; }
  prepare(sql) { return new D1PreparedStatement(this, sql); }
  batch(statements) {
    calls.d1 += 1;
    calls.d1batch += 1;
    return this.store.call({ op: "d1batch", db: this.name, statements: [...statements].map((s) => ({ sql: s.sql, params: s.params })) });
  }
  exec(sql) { calls.d1 += 1; return this.store.call({ op: "d1exec", db: this.name, sql }); }
}

class R2ObjectBody {
  constructor(fields) { Object.assign(this, fields); }
  async text() { return new TextDecoder().decode(this.body); }
  async arrayBuffer() { return this.body.buffer.slice(this.body.byteOffset, this.body.byteOffset + this.body.byteLength); }
  async bytes() { return this.body; }
  async json() { return JSON.parse(await this.text()); }
}

class R2Bucket {
  constructor(store) { this.store = store; }
  _call(method, args) { calls.r2 += 1; return this.store.call({ op: "r2", method, args }); }
  async put(key, value, options) {
    const body = typeof value === "string" || value == null ? value : new Uint8Array(value.buffer ?? value);
    return this._call("put", options === undefined ? [key, body] : [key, body, options]);
  }
  async get(key, options) {
    const o = await this._call("get", options === undefined ? [key] : [key, options]);
    return o ? new R2ObjectBody(o) : null;
  }
  head(key) { return this._call("head", [key]); }
  list(options) { return this._call("list", options === undefined ? [] : [options]); }
  delete(keys) { return this._call("delete", [keys]); }
}

function shimFetch(store) {
  // globalThis.fetch in the measured process: the request goes to the store process, the answer comes back as
  // a Response built here (in workerd the runtime's C++ builds it; here undici's JS does, a little dearer).
  return async function fetch(resource, init = {}) {
    calls.fetch += 1;
    let url = resource;
    let method = init.method ?? "GET";
    let headers = init.headers;
    let body = init.body;
    if (typeof resource === "object" && resource instanceof Request) {
      url = resource.url;
      method = resource.method;
      headers = resource.headers;
      body = method === "GET" || method === "HEAD" ? undefined : new Uint8Array(await resource.arrayBuffer());
    }
    const plainHeaders = headers === undefined ? {} : Object.fromEntries(new Headers(headers));
    if (body !== undefined && body !== null && typeof body !== "string") body = new Uint8Array(body.buffer ?? body);
    const sent = store.call({ op: "fetch", url: String(url), method, headers: plainHeaders, body });
    const signal = init.signal;
    const answer = signal ? await Promise.race([sent, new Promise((_, reject) => {
      if (signal.aborted) reject(signal.reason);
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    })]) : await sent;
    const empty = [101, 204, 205, 304].includes(answer.status);
    return new Response(empty ? null : answer.body, { status: answer.status, statusText: answer.statusText, headers: answer.headers });
  };
}

// =====================================================================================================
// The measured process: Pyodide as workerd sets it up, the fakes, the scenarios.
// =====================================================================================================

function run(cmd, args, what, cwd = HOME) {
  return runBytes(cmd, args, what, cwd).toString();
}

const HARNESS = `
"""workerd's calls into the Worker: Default(ctx, env).fetch(python_from_rpc(request)) and .scheduled()."""
from workers import python_from_rpc
import entry
from relay.core.ports import HttpRequest
from relay.web.http import Response as Answer


async def fetch(js_ctx, js_env, js_request):
    response = await entry.Default(js_ctx, js_env).fetch(python_from_rpc(js_request))
    return response.js_object


async def scheduled(js_ctx, js_env, js_controller):
    await entry.Default(js_ctx, js_env).scheduled(js_controller, js_env, js_ctx)


class Floor(entry.WorkerEntrypoint):
    """--kinds floor: an invocation with none of the relay's work, through the same SDK wrapping, Pyodide call and
    adapter as entry.Default: an answer at once, or one call of the adapter's ports (entry.D1, entry.FetchHttp)."""

    mode = ""

    async def fetch(self, request):
        return entry._response(Answer(204, {}))

    async def scheduled(self, controller, env=None, ctx=None):
        raw = self.env._env
        if Floor.mode == "d1":
            await entry.D1.of(raw.DB).run("SELECT ? AS one", (1,))
        elif Floor.mode == "d1x8":
            await entry.D1.of(raw.DB).batch([("SELECT ? AS one", (i,)) for i in range(8)])
        elif Floor.mode == "fetch":
            await entry.FetchHttp().send(HttpRequest("GET", str(raw.META_GRAPH_URL) + "/v0/shim-cost"))


async def floor_fetch(js_ctx, js_env, js_request):
    response = await Floor(js_ctx, js_env).fetch(python_from_rpc(js_request))
    return response.js_object


async def floor_scheduled(js_ctx, js_env, js_controller, mode):
    Floor.mode = mode
    await Floor(js_ctx, js_env).scheduled(js_controller, js_env, js_ctx)


_profile = None
_gc = {"start": 0.0, "runs": [0, 0, 0], "ms": [0.0, 0.0, 0.0]}


def _gc_watch(phase, info):
    import time
    if phase == "start":
        _gc["start"] = time.perf_counter()
    else:
        generation = info["generation"]
        _gc["runs"][generation] += 1
        _gc["ms"][generation] += (time.perf_counter() - _gc["start"]) * 1000


def gc_watch():
    """Python's own collections (generations 0, 1, 2), counted from here on: runs and ms (wall)."""
    import gc
    if _gc_watch not in gc.callbacks:
        gc.callbacks.append(_gc_watch)


def gc_ms():
    return sum(_gc["ms"])


def gc_runs():
    return list(_gc["runs"]) + [round(m, 2) for m in _gc["ms"]]


def py_profile_start():
    """--py-profile: Python's own profiler over the measured invocations (it slows them: shares only)."""
    global _profile
    import cProfile
    _profile = cProfile.Profile()
    _profile.enable()


def py_profile_stop(limit):
    _profile.disable()
    import io
    import pstats
    out = io.StringIO()
    stats = pstats.Stats(_profile, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return out.getvalue().replace("/repo/src/", "").replace("/sdk/", "sdk:")
`;

async function startWorker(repo, sdkDir, store) {
  const pyodide = await startPyodide({ repo, sdkDir, sysPath: ["/repo/src", "/sdk", "/runtime"] });
  globalThis.fetch = shimFetch(store);        // before pyodide.http binds `from js import fetch`
  pyodide.FS.writeFile("/runtime/bench_harness.py", HARNESS);
  pyodide.runPython("import bench_harness   # imports entry: its warm-up runs now, as in the snapshot workerd starts isolates from");
  return pyodide;
}

class Fakes extends JsonLinesChild {
  // bench/bench_worker_cpu.py --serve: FakeMeta and FakeLightspeed under CPython, in their own process.
  constructor() {
    super("bench/bench_worker_cpu.py --serve", 60);
  }
  start(python, spec) {
    return super.start(python, [join(HOME, "bench", "bench_worker_cpu.py"), "--serve", JSON.stringify(spec)]);
  }
  count() {
    return this.ask("count", "counting Meta's events");
  }
}

// --- CPU -----------------------------------------------------------------------------------------------

const cpuMicros = () => { const u = process.cpuUsage(); return u.user + u.system; };
const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;
const threadNanos = () => { try { return Number(readFileSync(SCHEDSTAT, "utf8").split(" ")[0]); } catch { return NaN; } };

let gcMs = () => 0;       // the harness's running total of Python's GC time, once the Worker is up

async function measured(work) {
  const before = { ...calls };
  const g0 = gcMs();
  const t0 = threadNanos();
  const c0 = cpuMicros();
  const value = await work();
  const cpu = (cpuMicros() - c0) / 1000;
  const thread = (threadNanos() - t0) / 1e6;
  const spent = { fetch: calls.fetch - before.fetch, d1: calls.d1 - before.d1, r2: calls.r2 - before.r2,
    d1batch: calls.d1batch - before.d1batch };
  return { cpu, thread, calls: spent, value, gc: gcMs() - g0 };
}

function context() {
  const pending = [];
  return { pending, ctx: { waitUntil: (work) => pending.push(Promise.resolve(work)), passThroughOnException() {} } };
}

async function invokeFetch(harness, env, makeRequest) {
  const request = makeRequest();             // built by "workerd", outside the measurement
  const { pending, ctx } = context();
  const m = await measured(async () => {
    const response = await harness.fetch(ctx, env, request);
    await settle(pending);
    return response;
  });
  const response = m.value;
  m.status = response.status;
  m.body = await response.text();
  return m;
}

async function invokeFloor(harness, env, mode) {
  // The Floor entrypoint of the harness (--kinds floor): "fetch" a request answered 204 at once, else a scheduled()
  // doing nothing ("") or one call of the adapter's ports.
  const { pending, ctx } = context();
  if (mode === "answer") {
    const request = new Request("https://relay.example/floor");
    const m = await measured(async () => {
      const response = await harness.floor_fetch(ctx, env, request);
      await settle(pending);
      return response;
    });
    m.status = m.value.status;
    m.body = await m.value.text();
    return m;
  }
  const controller = { cron: "*/10 * * * *", scheduledTime: Date.now(), type: "scheduled", noRetry() {} };
  return measured(async () => {
    await harness.floor_scheduled(ctx, env, controller, mode);
    await settle(pending);
  });
}
async function invokeScheduled(harness, env) {
  const { pending, ctx } = context();
  const controller = { cron: "*/10 * * * *", scheduledTime: Date.now(), type: "scheduled", noRetry() {} };
  return measured(async () => {
    await harness.scheduled(ctx, env, controller);
    await settle(pending);
  });
}

// --- the scenarios -------------------------------------------------------------------------------------

function fixture(name) {
  return readFileSync(join(HOME, "tests", "fixtures", "lightspeed", name), "utf8");
}

function shopVars(prefix, key, secret, pixel) {
  return { [`${prefix}_LIGHTSPEED_API_KEY`]: key, [`${prefix}_LIGHTSPEED_API_SECRET`]: secret,
    [`${prefix}_LIGHTSPEED_SHOP_ID`]: "318842", [`${prefix}_META_ACCESS_TOKEN`]: `EAAbench${prefix}token`,
    [`${prefix}_META_PIXEL_ID`]: pixel, [`${prefix}_SHOP_URL`]: `https://${prefix.toLowerCase()}.example` };
}

function webhookMaker(secret) {
  // The shared paid fixture as a new order each time (id, number, times inside Meta's window), signed as
  // Lightspeed signs: md5(body + secret).
  const template = JSON.parse(fixture("webhook-order-paid.raw.json"));
  const delivery = JSON.parse(fixture("webhook-order-paid.headers.json")).headers;
  let n = 0;
  return () => {
    n += 1;
    const body = structuredClone(template);
    const now = Date.now();
    body.order.id = 500_000_000 + n;
    body.order.number = `WEB${String(n).padStart(5, "0")}`;
    body.order.createdAt = new Date(now - 10 * 60_000).toISOString().replace(/\.\d{3}Z$/, "+00:00");
    body.order.updatedAt = new Date(now - 9 * 60_000).toISOString().replace(/\.\d{3}Z$/, "+00:00");
    const bytes = Buffer.from(JSON.stringify(body), "utf8");
    const signature = createHash("md5").update(Buffer.concat([bytes, Buffer.from(secret)])).digest("hex");
    return new Request(`${BASE}/?shop=vik`, { method: "POST", body: bytes,
      headers: { "Content-Type": "application/json", "X-Shop-Id": delivery["X-Shop-Id"], "X-Signature": signature,
        "X-Event": "orders/paid" } });
  };
}

function bridgeMaker() {
  let n = 0;
  return () => {
    n += 1;
    const post = { order_number: `BRG${String(n).padStart(5, "0")}`, consent: "granted",
      fbp: `fb.1.${Date.now() - 60_000}.${1_000_000_000 + n}`, fbclid: `IwAR0bench${n}` };
    return new Request(`${BASE}/bridge?shop=vik`, { method: "POST", body: JSON.stringify(post),
      headers: { "Content-Type": "text/plain", "CF-Connecting-IP": `2001:db8:${n.toString(16)}::7`,
        "User-Agent": "Mozilla/5.0 (bench) Safari/605.1.15", Origin: "https://vik.example" } });
  };
}

const admin = (path) => () => new Request(`${BASE}${path}`, { headers: { Authorization: `Bearer ${ADMIN}` } });

function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  return { n: sorted.length, median, p95: at(0.95), max: sorted[sorted.length - 1] };
}

function expectOk(kind, m, wanted) {
  if (m.status !== undefined && !wanted.includes(m.status)) fail(`${kind}: answered ${m.status}: ${m.body.slice(0, 400)}`);
}

// =====================================================================================================
// main
// =====================================================================================================

async function main() {
  const { values: opts } = parseArgs({
    options: {
      repo: { type: "string", default: HOME },
      python: { type: "string", default: process.env.PYTHON || "python" },
      quick: { type: "boolean", default: false },
      profile: { type: "string" },
      "py-profile": { type: "string" },
      env: { type: "string", multiple: true, default: [] },
      orders: { type: "string" },
      embedded: { type: "boolean", default: false },
      kinds: { type: "string" },
      n: { type: "string" },
      passes: { type: "string" },
      "spool-rows": { type: "string" },
      "orders-limit": { type: "string" },
      shops: { type: "string" },
      "per-pass": { type: "boolean", default: false },
      json: { type: "string" },
    },
  });
  const repo = resolve(opts.repo);
  if (!existsSync(join(repo, "src", "entry.py"))) fail(`--repo ${repo} has no src/entry.py`);
  for (const o of ["profile", "py-profile"]) if (opts[o] && !KINDS.includes(opts[o])) fail(`--${o} takes one of ${KINDS.join(", ")}`);
  const only = opts.profile ?? opts["py-profile"];
  const wanted = only ? [only] : opts.kinds ? opts.kinds.split(",") : KINDS;
  for (const k of wanted) {
    if (!KINDS.includes(k) && !OPTIONAL_KINDS.includes(k)) fail(`unknown kind ${k}; kinds: ${[...KINDS, ...OPTIONAL_KINDS].join(", ")}`);
  }
  const n = Number(opts.n ?? (opts.quick ? 2 : 30));
  const warm = opts.quick ? 1 : 5;
  const perShop = Number(opts.orders ?? (opts.quick ? 20 : 300));
  const extra = Object.fromEntries(opts.env.map((kv) => { const i = kv.indexOf("="); return [kv.slice(0, i), kv.slice(i + 1)]; }));
  if (wanted.includes("webhook") && extra.RELAY_PLAN === "free" && n + warm + 1 > 60) {
    // the free plan's cron sends a shop at most relay.jobs.limits.META_PER_MINUTE (60) events a minute, and the
    // passes that send the webhooks' orders run within one: more orders than that would wait for the next minute
    fail(`--n ${n} with the webhook kind on the free plan: at most ${60 - warm - 1} (60 webhooks a shop a minute, ` +
      "warm-up included, are what the cron may send to Meta in one)");
  }

  const loadStart = os.loadavg();
  const started = new Date();
  const secret = JSON.parse(fixture("webhook-order-paid.headers.json")).secret_used_for_signature;
  const accountsA = ["VIK", "ANN", "BOB"].map((p) => ({ prefix: p, key: `bench-${p.toLowerCase()}-key`, secret, orders: 0 }));
  const busyShops = Number(opts.shops ?? 3);
  if (!Number.isInteger(busyShops) || busyShops < 1 || busyShops > 20) fail("--shops takes a whole number from 1 to 20");
  const accountsB = Array.from({ length: busyShops }, (_, i) => `SHOP${i}`).map((p, i) => ({ prefix: p, key: `bench-busy${i}-key`,
    secret: `bench-busy${i}-secret`, orders: perShop }));
  const sdk = ensureSdk(opts.python);
  const [store, fakes] = await Promise.all([new Store().start(),
    new Fakes().start(opts.python, { accounts: [...accountsB, ...accountsA], embedded: opts.embedded })]);
  const out = { rows: [], machine: {}, profile: null };
  try {
    const migrations = readMigrations(repo).map((m) => m.sql);
    await store.call({ op: "migrate", db: "A", files: migrations });
    await store.call({ op: "migrate", db: "B", files: migrations });
    const pyodide = await startWorker(repo, sdk, store);
    const harness = pyodide.pyimport("bench_harness");
    harness.gc_watch();
    gcMs = () => harness.gc_ms();
    // The cron's work as it was measured before RELAY_PLAN (50 subrequests a pass, no CPU model: ~40 events a busy
    // pass), so before and after compare; --env RELAY_PLAN=free runs the free profile's CPU model (docs/PLANS.md).
    const common = { META_GRAPH_URL: fakes.urls.meta, LIGHTSPEED_API_URL: fakes.urls.lightspeed, ADMIN_TOKEN: ADMIN,
      RELAY_PLAN: "paid", RELAY_SUBREQUEST_BUDGET: "50" };
    const vars = (accounts) => Object.assign({}, ...accounts.map((a, i) => shopVars(a.prefix, a.key, a.secret, String(900_000_000_000_000 + i))));
    const logs = new R2Bucket(store);
    const envA = { ...common, ...vars(accountsA), ...extra, DB: new D1Database(store, "A"), LOGS: logs };
    const envB = { ...common, ...vars(accountsB), ...extra, DB: new D1Database(store, "B"), LOGS: logs };

    const shim = await shimCost(store, fakes.urls.meta, opts.quick ? 20 : 200);
    out.shim = shim;

    const rows = [];
    const record = (label, kind, first, ms, extraInfo = "") => {
      const s = stats(ms.map((m) => m.cpu));
      const t = stats(ms.map((m) => m.thread));
      const sub = stats(ms.map((m) => m.calls.fetch + m.calls.d1 + m.calls.r2));
      const part = (k) => stats(ms.map((m) => m.calls[k])).median;
      const shimOf = (c) => ((c.d1 - c.d1batch) * shim.d1 + c.d1batch * shim.d1batch + c.r2 * shim.r2 + c.fetch * shim.fetch) / 1000;
      const shimMs = shimOf({ d1: part("d1"), d1batch: part("d1batch"), r2: part("r2"), fetch: part("fetch") });
      // the thread's CPU less this invocation's own forwarded calls at the shim's measured cost (the issue's
      // "measure and subtract it"); workerd's bindings cost something too, so this errs low where the other errs high
      const less = stats(ms.map((m) => m.thread - shimOf(m.calls)));
      const row = { label, kind, n: s.n, median: s.median, p95: s.p95, max: s.max, thread_median: t.median,
        first: first?.cpu ?? null, first_calls: first ? first.calls : null,
        subrequests: { median: sub.median, max: sub.max, fetch: part("fetch"), d1: part("d1"), r2: part("r2") },
        shim_ms: shimMs, less_shim: less.median, less_shim_p95: less.p95, note: extraInfo,
        thread_p95: t.p95, samples: ms.map((m) => [+m.cpu.toFixed(3), +m.thread.toFixed(3), m.calls]) };   // in order: [cpu, thread, calls]
      // Python's cyclic GC inside the measured invocations: how many ran one, and its wall ms (in the figures)
      const collected = ms.filter((m) => m.gc > 0);
      row.python_gc = { invocations: collected.length, ms: collected.reduce((a, m) => a + m.gc, 0),
        max: collected.reduce((a, m) => Math.max(a, m.gc), 0) };
      rows.push(row);
      console.error(`  ${label}: median ${s.median.toFixed(1)} ms, p95 ${s.p95.toFixed(1)} ms (n ${s.n})${extraInfo ? "; " + extraInfo : ""}` +
        `; Python GC in ${collected.length} (max ${row.python_gc.max.toFixed(1)} ms)`);
    };

    let profiler = null;
    const profiled = async (kind, body) => {
      if (opts["py-profile"] === kind) {
        harness.py_profile_start();
        try { return await body(); } finally {
          // printed at once: a check that fails later (a profiled pass is slower, so sends less) must not lose it
          console.log(`\nPython's cProfile over the measured invocations (slowed by it; read shares):\n${harness.py_profile_stop(30)}`);
        }
      }
      if (opts.profile !== kind) return body();
      profiler = await startProfiler();
      try { return await body(); } finally { out.profile = await stopProfiler(profiler, kind, repo); }
    };

    const repeat = async (kind, label, invoke, wantedStatus) => {
      const first = await invoke();
      expectOk(kind, first, wantedStatus);
      for (let i = 0; i < warm; i += 1) expectOk(kind, await invoke(), wantedStatus);
      const ms = await profiled(kind, async () => {
        const list = [];
        for (let i = 0; i < n; i += 1) {
          const m = await invoke();
          expectOk(kind, m, wantedStatus);
          list.push(m);
        }
        return list;
      });
      record(label, kind, first, ms);
    };

    const has = (k) => wanted.includes(k);
    if (has("webhook")) {
      // On the free plan the Worker's webhook only stores the order (relay.jobs.limits.sends_inline) and the cron
      // sends it: that half is measured too, pass by pass, until Meta has every order once.
      const make = webhookMaker(secret);
      const free = envA.RELAY_PLAN === "free";
      const before = await fakes.count();
      const label = free ? `webhook (accept only; the free plan's cron sends), ${n} orders`
        : `webhook (accept + waitUntil send), ${n} orders`;
      await repeat("webhook", label, () => invokeFetch(harness, envA, make), [200]);
      let sent = (await fakes.count()).distinct - before.distinct;
      if (free) {
        if (sent !== 0) fail(`webhook: on the free plan the webhook sent ${sent} events itself`);
        const passes = [];
        while (sent < n + warm + 1 && passes.length < 400) {
          passes.push(await invokeScheduled(harness, envA));
          sent = (await fakes.count()).distinct - before.distinct;
        }
        record(`cron sending those ${n + warm + 1} webhooks' orders (free plan), per pass`, "cron-webhooks",
          passes[0], passes.slice(1), `${passes.length} passes, ${((n + warm + 1) / passes.length).toFixed(1)} events a pass`);
        // The webhooks' log lines staged in D1 (relay.outbox.log_spool; a checkout before it has no such table): the
        // passes that write them to R2 once nothing is due are measured too.
        const staged = async () => {
          try {
            const r = await store.call({ op: "d1", db: "A", kind: "all", sql: "SELECT COUNT(*) AS n FROM log_spool", params: [] });
            return (r.results ?? r)[0].n;
          } catch { return 0; }
        };
        const copies = [];
        const stagedBefore = await staged();
        while ((await staged()) > 0 && copies.length < 20) copies.push(await invokeScheduled(harness, envA));
        if (copies.length) {
          record(`cron writing the ${stagedBefore} staged log rows to R2 (free plan), per pass`, "cron-copy", null, copies,
            `${copies.length} passes`);
        }
      }
      if (sent !== n + warm + 1) fail(`webhook: Meta got ${sent} new events for ${n + warm + 1} webhooks`);
    }
    if (has("floor")) {
      // What the runtime and the adapter cost with none of the relay's work: read the other rows against these.
      await repeat("floor", "floor: fetch answered 204 at once", () => invokeFloor(harness, envA, "answer"), [204]);
      await repeat("floor", "floor: scheduled returning at once", () => invokeFloor(harness, envA, ""), []);
      await repeat("floor", "floor: scheduled with one D1 statement (entry.D1.run)", () => invokeFloor(harness, envA, "d1"), []);
      await repeat("floor", "floor: scheduled with one D1 batch of 8 statements", () => invokeFloor(harness, envA, "d1x8"), []);
      await repeat("floor", "floor: scheduled with one fetch (entry.FetchHttp)", () => invokeFloor(harness, envA, "fetch"), []);
    }
    if (has("bridge")) {
      const make = bridgeMaker();
      await repeat("bridge", "POST /bridge", () => invokeFetch(harness, envA, make), [204]);
    }
    if (has("cron-idle")) {
      for (let i = 0; i < 2; i += 1) await invokeScheduled(harness, envA);     // the daily checks, the first listing
      await repeat("cron-idle", "cron, nothing to do (3 shops)", () => invokeScheduled(harness, envA), []);
    }
    if (has("cron-copy")) {
      // A free pass's lines as its send round's finish stages them (one row per shop and pass: an attempt line), for
      // the 3 shops of envA, staged COPY_AGE ago: the next pass copies them first (one R2 put per shop, the delete).
      const rowsWanted = Number(opts["spool-rows"] ?? 200);
      if (!has("cron-idle")) for (let i = 0; i < 2; i += 1) await invokeScheduled(harness, envA);   // daily checks
      let k = 0;
      const stage = async () => {
        const at = Math.floor(Date.now() / 1000) - 700;
        const rowsJson = [];
        for (let i = 0; i < rowsWanted; i += 1) {
          k += 1;
          const shop = ["vik", "ann", "bob"][i % 3];
          const line = { attempts: 1, event_id: `purchase_WEB${String(k).padStart(5, "0")}`, events_received: 1,
            fbtrace_id: "AbCdEf0123456789xyzAB", from_state: "due", kind: "attempt",
            match_keys: ["em", "ph", "fn", "ln", "ct", "country", "external_id", "client_ip_address", "client_user_agent", "fbp"],
            ms: 212, order_id: 500_000_000 + k, order_number: `WEB${String(k).padStart(5, "0")}`, shop, state: "sent",
            status: 200, t: at, verdict: "sent" };
          const body = JSON.stringify(line, Object.keys(line).sort()).replace(/,"/g, ', "').replace(/":/g, '": ') + "\n";
          rowsJson.push({ s: shop, k: `logs/${shop}/2026/12/06/000000-${String(k).padStart(12, "0")}.ndjson`, b: body, a: at });
        }
        await store.call({ op: "d1", db: "A", kind: "run", sql: "INSERT INTO log_spool (shop, key, body, at) SELECT " +
          "json_extract(value, '$.s'), json_extract(value, '$.k'), json_extract(value, '$.b'), json_extract(value, '$.a') " +
          "FROM json_each(?)", params: [JSON.stringify(rowsJson)] });
      };
      const copyPass = async () => {
        await stage();                                   // outside the measurement: D1 holds them before the pass
        const m = await invokeScheduled(harness, envA);
        if (m.calls.r2 < 1) fail("cron-copy: the pass copied nothing");
        // what it did not copy (a pass copies as many shops as its CPU holds) is cleared: each pass starts alike
        await store.call({ op: "d1", db: "A", kind: "run", sql: "DELETE FROM log_spool", params: [] });
        return m;
      };
      await repeat("cron-copy", `cron copying ${rowsWanted} staged log rows (3 shops)`, copyPass, []);
    }
    const busyWanted = ["cron-busy", "dashboard", "status", "orders", "replay"].some(has);
    if (busyWanted) {
      const passes = [];
      let last = await fakes.count();
      const events = [];
      let stored = 0;
      // the free plan sends about one event a pass (docs/PLANS.md): 3 x 300 orders take ~1,500 passes
      const maxPasses = Number(opts.passes ?? (opts.quick ? 60 : envB.RELAY_PLAN === "free" ? 3000 : 400));
      const drain = async (most = maxPasses) => {
        for (let i = 0; i < most && passes.length < maxPasses; i += 1) {
          const m = await invokeScheduled(harness, envB);
          const now = await fakes.count();
          events.push(now.events - last.events);
          m.events = now.events - last.events;
          last = now;
          passes.push(m);
          const left = await store.call({ op: "d1", db: "B", kind: "first", sql:
            "SELECT (SELECT COUNT(*) FROM outbox WHERE state IN ('due', 'retry', 'sending')) AS open, " +
            "(SELECT COUNT(*) FROM backfill WHERE cursor IS NOT NULL AND run_page IS NULL) AS listed, " +
            "(SELECT COUNT(*) FROM outbox WHERE event_name = 'Purchase') AS orders", params: [] });
          m.listed = left.orders - stored;
          stored = left.orders;
          if (opts["per-pass"]) {
            console.error(`  pass ${passes.length}: ${m.cpu.toFixed(2)} ms CPU (thread ${m.thread.toFixed(2)}), ` +
              `${m.calls.fetch} fetch + ${m.calls.d1} D1 + ${m.calls.r2} R2, listed ${m.listed}, sent ${m.events}`);
          }
          if (left.open === 0 && left.listed === busyShops && left.orders >= busyShops * perShop) { out.drained = true; return; }
          // passes run back to back here, 2 minutes apart on the cron: a pass that waited (Meta's 60 requests per shop
          // and minute, on the real clock) lets a second go by before the next
          if (!m.events && !m.listed) await new Promise((r) => setTimeout(r, 1000));
        }
        if (most === 1) return;
        if (opts.passes) return;          // a capped run reports what it did
        fail(`cron-busy: not drained after ${passes.length} passes`);
      };
      if (only === "cron-busy") {
        // The profile is of the steady passes (2 to the last); the first pass is shown apart.
        await drain(1);
        await profiled("cron-busy", () => drain());
      } else {
        await drain();
      }
      const final = await fakes.count();
      if (final.twice) fail(`cron-busy: Meta got ${final.twice} event(s) twice`);
      out.outbox_states = await store.call({ op: "d1", db: "B", kind: "all", sql:
        "SELECT state, COUNT(*) AS n FROM outbox WHERE event_name = 'Purchase' GROUP BY state ORDER BY state", params: [] });
      const steady = passes.slice(1);
      const perPass = stats(events.slice(1).filter((e) => e > 0));
      if (has("cron-busy")) {
        record(`cron, ${busyShops} shops x ${perShop} missed orders, passes 2-${passes.length}`, "cron-busy", passes[0],
          steady.length ? steady : passes,
          `${passes.length} passes, median ${perPass.median ?? 0} events per sending pass, ${final.twice} sent twice`);
        const f = passes[0];
        out.first_pass = { cpu: f.cpu, thread: f.thread, calls: f.calls, events: events[0], listed: f.listed };
        out.passes = passes.map((m) => ({ cpu: m.cpu, thread: m.thread, calls: m.calls, listed: m.listed, events: m.events }));
        const all = stats(passes.map((m) => m.cpu));
        const allThread = stats(passes.map((m) => m.thread));
        const busy = passes.filter((m) => m.listed || m.events);
        out.all_passes = { n: passes.length, median: all.median, p95: all.p95, max: all.max,
          thread_median: allThread.median, thread_p95: allThread.p95, thread_max: allThread.max,
          progressed: busy.length, events: events.reduce((a, b) => a + b, 0), drained: Boolean(out.drained),
          events_per_pass: events.reduce((a, b) => a + b, 0) / passes.length };
      }
    }
    if (has("dashboard")) await repeat("dashboard", `GET /dashboard (${busyShops * perShop} orders, ${busyShops} shops)`, () => invokeFetch(harness, envB, admin("/dashboard")), [200]);
    if (has("status")) await repeat("status", busyShops === 3 ? "GET /status" : `GET /status (${busyShops} shops)`, () => invokeFetch(harness, envB, admin("/status")), [200]);
    if (has("orders")) {
      // --orders-limit N asks for N rows (?limit=N); without it, the page's default (relay.web.orders.DEFAULT_LIMIT)
      const asked = opts["orders-limit"];
      const path = asked ? `/orders?shop=shop0&limit=${Number(asked)}` : "/orders?shop=shop0";
      const label = asked ? `GET /orders?limit=${Number(asked)}` : "GET /orders (50 rows)";
      await repeat("orders", label, () => invokeFetch(harness, envB, admin(path)), [200]);
    }
    if (has("replay")) {
      // POST /orders/replay of one sent order (a new one each time): on the free plan it only re-queues (the cron
      // sends), on paid it sends in its waitUntil
      const rows = await store.call({ op: "d1", db: "B", kind: "all", params: [],
        sql: "SELECT order_number FROM outbox WHERE shop = 'shop0' AND state = 'sent' ORDER BY order_id" });
      const numbers = (rows.results ?? rows).map((r) => r.order_number);
      if (numbers.length < n + warm + 1) fail(`replay: ${numbers.length} sent orders in shop0, ${n + warm + 1} needed`);
      const replayOf = () => new Request(`${BASE}/orders/replay?shop=shop0`, { method: "POST",
        headers: { Authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: JSON.stringify({ number: numbers.shift() }) });
      const free = envB.RELAY_PLAN === "free";
      await repeat("replay", free ? "POST /orders/replay (one order; free plan: re-queued)" :
        "POST /orders/replay (one order, sent in waitUntil)", () => invokeFetch(harness, envB, replayOf), [200]);
    }

    out.rows = rows;
    out.python_gc = harness.gc_runs().toJs();   // the whole run's collections: runs gen0/1/2, then ms gen0/1/2
    console.error(`Python GC over the whole run: runs gen0/1/2 and ms gen0/1/2: ${out.python_gc.join(" ")}`);
    out.machine = machine(repo, pyodide.version, started, loadStart);
    out.plan = envB.RELAY_PLAN;
    print(out);
    if (opts.json) writeFileSync(opts.json, JSON.stringify(out, null, 1));
  } finally {
    fakes.stop();
    store.stop();
  }
  process.exit(0);
}

async function shimCost(store, metaUrl, rounds) {
  // CPU this process spends per forwarded call, with no Python around it: what the shim adds to each subrequest.
  const db = new D1Database(store, "A");
  const bucket = new R2Bucket(store);
  const per = async (fn) => {
    for (let i = 0; i < 5; i += 1) await fn(i);
    const c0 = cpuMicros();
    for (let i = 0; i < rounds; i += 1) await fn(i);
    return (cpuMicros() - c0) / rounds;
  };
  const saved = { ...calls };
  const d1 = await per(() => db.prepare("SELECT shop, state, COUNT(*) AS n FROM outbox WHERE shop = ? GROUP BY shop, state").bind("vik").all());
  // A batch as the relay sends them (a pass's start, a webhook's record): 8 statements of ~300 characters, a
  // few parameters each; its SQL text and parameters cross the IPC channel as the Worker's cross to D1.
  const filler = " AND shop IS NOT NULL".repeat(12);
  const many = Array.from({ length: 8 }, (_, i) =>
    db.prepare(`SELECT shop, state, COUNT(*) AS n FROM outbox WHERE shop = ? AND order_id > ?${filler} GROUP BY shop, state -- ${i}`)
      .bind("vik", i));
  const d1batch = await per(() => db.batch(many));
  const r2 = await per((i) => bucket.put(`shim/${i}`, "{\"a\": 1}\n", { httpMetadata: { contentType: "application/x-ndjson" } }));
  const fetch = await per(async () => (await globalThis.fetch(`${metaUrl}/v0/shim-cost`, { method: "GET" })).arrayBuffer());
  Object.assign(calls, saved);
  return { d1, d1batch, r2, fetch };
}

function machine(repo, pyodideVersion, started, loadStart) {
  const git = (args) => { try { return run("git", args, "git", repo).trim(); } catch { return "?"; } };
  const sdkInfo = readdirSync(SDK_DIR).find((f) => f.startsWith("workers_runtime_sdk-") && f.endsWith(".dist-info")) ?? `workers-runtime-sdk ${SDK_VERSION}`;
  const mfVersion = JSON.parse(readFileSync(join(HOME, "node_modules", "miniflare", "package.json"), "utf8")).version;
  return {
    cpu: os.cpus()[0]?.model ?? "?", cores: os.cpus().length, date: started.toISOString(),
    load: { start: loadStart.map((x) => x.toFixed(2)).join(" "), end: os.loadavg().map((x) => x.toFixed(2)).join(" ") },
    node: process.version, pyodide: pyodideVersion, sdk: sdkInfo.replace(/\.dist-info$/, "").replace("workers_runtime_sdk-", "workers-runtime-sdk "),
    miniflare: mfVersion, repo, commit: `${git(["rev-parse", "--short", "HEAD"])} (${git(["rev-parse", "--abbrev-ref", "HEAD"])})`,
  };
}

function print(out) {
  const m = out.machine;
  const f = (x) => (x === null || x === undefined ? "-" : x >= 100 ? x.toFixed(0) : x.toFixed(1));
  console.log(`Worker CPU per invocation (bench/bench_worker_cpu.mjs)`);
  console.log(`machine: ${m.cpu}, ${m.cores} cores; ${m.date}; load average ${m.load.start} (start), ${m.load.end} (end)`);
  console.log(`Node ${m.node}, Pyodide ${m.pyodide}, ${m.sdk}, miniflare ${m.miniflare} (D1/R2 in another process)`);
  console.log(`worker: ${m.repo} at ${m.commit}`);
  console.log(`shim cost in this process per forwarded call (included in the figures; "thread less shim" subtracts each ` +
    `invocation's own calls at it): ` +
    `D1 ${(out.shim.d1 / 1000).toFixed(2)} ms (a batch of 8: ${(out.shim.d1batch / 1000).toFixed(2)}), ` +
    `R2 ${(out.shim.r2 / 1000).toFixed(2)} ms, fetch ${(out.shim.fetch / 1000).toFixed(2)} ms`);
  console.log("");
  console.log("| invocation | n | median ms | p95 ms | max ms | first ms | subrequests (fetch + D1 + R2) | thread median ms | thread p95 ms | shim ms | thread less shim: median / p95 |");
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const r of out.rows) {
    const s = r.subrequests;
    const subs = `${s.median} (${s.fetch} + ${s.d1} + ${s.r2})` + (s.max !== s.median ? `, max ${s.max}` : "");
    console.log(`| ${r.label} | ${r.n} | ${f(r.median)} | ${f(r.p95)} | ${f(r.max)} | ${f(r.first)} | ${subs} | ${f(r.thread_median)} | ${f(r.thread_p95)} | ${r.shim_ms.toFixed(2)} | ${f(r.less_shim)} / ${f(r.less_shim_p95)} |`);
  }
  if (out.first_pass) {
    const p = out.first_pass;
    console.log(`\ncron-busy first pass: ${f(p.cpu)} ms CPU (thread ${f(p.thread)} ms), ` +
      `${p.calls.fetch} fetch + ${p.calls.d1} D1 + ${p.calls.r2} R2, ${p.listed} orders listed, ${p.events} events sent` +
      (p.listed ? ` (${f(p.thread / p.listed)} ms of thread CPU an order listed, all of the pass's work included)` : ""));
  }
  if (out.all_passes) {
    const a = out.all_passes;
    console.log(`cron-busy every pass (1-${a.n}): median ${f(a.median)} ms, p95 ${f(a.p95)} ms, max ${f(a.max)} ms CPU ` +
      `(thread: median ${f(a.thread_median)}, p95 ${f(a.thread_p95)}, max ${f(a.thread_max)}); ` +
      `${a.progressed} of ${a.n} listed or sent something; ${a.events} events, ${a.events_per_pass.toFixed(2)} a pass ` +
      `(${Math.round(a.events_per_pass * 720)} a day at a pass every 2 minutes)${a.drained ? "; drained" : "; NOT drained"}`);
  }
  if (out.outbox_states) {
    const rows = out.outbox_states.results ?? out.outbox_states;
    console.log(`cron-busy outbox after the passes: ${rows.map((r) => `${r.state} ${r.n}`).join(", ")}`);
  }
  for (const r of out.rows) if (r.note) console.log(`${r.kind}: ${r.note}`);
  printTargets(out);
  if (out.profile) printProfile(out.profile);
}

// Issue 19's targets, read on the isolate thread's CPU (what Cloudflare counts against the plan), with the figure
// less the bench's shim beside it: printed for the rows this run measured, never asserted (a machine's speed is not
// the code's). The ms targets are the Free plan's 10 ms; on paid (where a webhook sends at once and CPU is 30 s),
// the first pass over a 250-order page.
const FREE_TARGETS = [
  ["webhook", "median", 5], ["webhook", "p95", 10], ["cron-webhooks", "p95", 10], ["bridge", "p95", 5],
  ["cron-idle", "median", 3], ["cron-idle", "p95", 3], ["cron-copy", "p95", 10], ["orders", "p95", 10],
  ["status", "p95", 10], ["dashboard", "p95", 10], ["replay", "p95", 10],
];

function printTargets(out) {
  const lines = [];
  // The verdict reads both figures: "met" when the thread's CPU is inside the limit, "met less the shim" when only
  // the figure without the bench's stand-in for D1's and R2's client is (the issue asks for that client to be kept
  // out of the figure or subtracted; workerd's own client costs some of it, so the Worker lies between the two).
  const verdict = (limit, thread, less) => (thread <= limit ? "met"
    : less !== undefined && less <= limit ? "met less the shim" : "MISSED");
  // two decimals, so that a figure just over its limit does not print as the limit itself
  const verdicts = new Set();
  const line = (what, limit, thread, less) => {
    const said = verdict(limit, thread, less);
    verdicts.add(said);
    lines.push(`| ${what} | ≤ ${limit} | ${thread.toFixed(2)} | ${less === undefined ? "-" : less.toFixed(2)} | ${said} |`);
  };
  if (out.plan === "free") {
    for (const [kind, stat, limit] of FREE_TARGETS) {
      for (const row of out.rows.filter((r) => r.kind === kind)) {
        const median = stat === "median";
        line(`${row.label}: ${stat}`, limit, median ? row.thread_median : row.thread_p95,
          median ? row.less_shim : row.less_shim_p95);
      }
    }
    const a = out.all_passes;
    if (a) {
      line(`cron backlog, every pass (1-${a.n}): p95`, 10, a.thread_p95);
      lines.push(`| … passes that listed or sent something | every pass | ${a.progressed} of ${a.n} | - | ` +
        `${a.progressed === a.n ? "met" : "see below"} |`);
    }
  } else if (out.first_pass) {
    line(`cron backlog, first pass: ${out.first_pass.listed} orders listed (the target is for a 250-order page)`, 1000,
      out.first_pass.thread);
  }
  if (!lines.length) return;
  console.log(`\ntargets (issue 19; ${out.plan} plan), ms of thread CPU:`);
  console.log("| target | limit | thread | less the shim | |");
  console.log("|---|---|---|---|---|");
  for (const l of lines) console.log(l);
  if (verdicts.has("met less the shim")) {
    console.log("\"met less the shim\": over the limit with the bench's in-process forwarding of D1 and R2 calls (the shim, " +
      "measured at the top), inside it without; workerd's own D1 client does part of that work, so the Worker's CPU " +
      "lies between the two figures.");
  }
  if (out.all_passes && out.plan === "free" && out.all_passes.progressed !== out.all_passes.n) {
    console.log("Passes here run back to back on the real clock, so some wait on the relay's limit of 60 Meta requests " +
      "a shop a minute, which a pass every 2 minutes never meets; " +
      "bench/bench_backfill.py runs the cron's own clock and is the authority on progress and drain.");
  }
}

// --- the profiler --------------------------------------------------------------------------------------

async function startProfiler() {
  const { Session } = await import("node:inspector/promises");
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 500 });   // µs; finer doubles the CPU
  await session.post("Profiler.start");
  return session;
}

let wasmNames = null;

function wasmFunctionNames() {
  // pyodide.asm.wasm has no name section, but exports almost every function (it is a dynamic-linking main
  // module): function index -> export name, read from the binary's export section.
  if (wasmNames) return wasmNames;
  wasmNames = new Map();
  const b = readFileSync(join(HOME, "node_modules", "pyodide", "pyodide.asm.wasm"));
  let at = 8;
  const leb = () => { let v = 0; let shift = 0; let byte; do { byte = b[at++]; v += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80); return v; };
  while (at < b.length) {
    const id = b[at++];
    const size = leb();
    const end = at + size;
    if (id === 7) {
      for (let count = leb(); count > 0; count -= 1) {
        const len = leb();
        const name = b.toString("utf8", at, at + len);
        at += len;
        const kind = b[at++];
        const index = leb();
        if (kind === 0 && !wasmNames.has(index)) wasmNames.set(index, name);
      }
      break;
    }
    at = end;
  }
  return wasmNames;
}

function frameName(frame) {
  const name = frame.functionName || "(anonymous)";
  const index = /^wasm-function\[(\d+)\]$/.exec(name)?.[1];
  return index === undefined ? name : wasmFunctionNames().get(Number(index)) ?? name;
}

const BRIDGE = /hiwire|jsproxy|pyproxy|js2python|python2js|jsref|jsv_|jsvobject|jsbuffer|jsexception|jsarray|jsmap|jsstring|_pyodide|pyodide_|to_js|to_py|emval|wrap_|js_|_js|^Js|^js|jslib|create_proxy|destroy_proxies|convert|emscripten/i;

function category(frame) {
  const name = frameName(frame);
  const url = frame.url || "";
  if (name === "(garbage collector)") return "V8 GC";
  if (name === "(idle)") return "idle";
  if (name === "(program)" || name === "(root)") return "V8 other (program)";
  if (/^(wasm-to-js|js-to-wasm)/.test(name)) return "Pyodide JS<->Python bridge";
  if (url.startsWith("wasm://") || url.includes(".wasm")) {
    if (BRIDGE.test(name)) return "Pyodide JS<->Python bridge";
    if (/^(gc_|_PyObject_GC|PyObject_GC|_PyGC|collect|deduce_unreachable|move_unreachable|visit_)/.test(name)) return "Python GC";
    return "Python interpreter";
  }
  if (url.includes("pyodide.asm.js") || url.includes("pyodide.mjs") || url.includes("/pyodide/")) return "Pyodide JS<->Python bridge";
  // The profile covers the whole measured stretch, so the bench's own work between invocations (building the next
  // request, reading the CPU clocks) is in it too: counted with the shim, not with the Worker.
  if (url.includes("bench_worker_cpu") || /child_process|serialization/.test(url) ||
      /^(writeBuffer|writeUtf8String|writeChannelMessage|readChannelMessage|channel)/.test(name) ||
      /^(structuredClone|cpuUsage|readFileSync|openSync|readSync|closeSync|tryStatSync|tryReadSync|digest|update|createHash)$/.test(name)) {
    return "bench: shim, IPC, its own clocks (wall time: inflated on a loaded machine)";
  }
  if (url.startsWith("node:") || url === "") return "Node: Response, Headers, timers, promises";
  return "other JS";
}

async function stopProfiler(session, kind, repo) {
  const { profile } = await session.post("Profiler.stop");
  session.disconnect();
  const dir = mkdtempSync(join(os.tmpdir(), "bench-worker-cpu-"));
  const path = join(dir, `${kind}.cpuprofile`);
  writeFileSync(path, JSON.stringify(profile));
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map();
  const deltas = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i += 1) {
    const dt = i + 1 < deltas.length ? deltas[i + 1] : 0;
    const id = profile.samples[i];
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  const frames = new Map();
  const groups = new Map();
  for (const [id, us] of self) {
    const node = byId.get(id);
    const cf = node.callFrame;
    const cat = category(cf);
    groups.set(cat, (groups.get(cat) ?? 0) + us);
    const file = (cf.url || "").startsWith("wasm://") ? "" : (cf.url || "").split("/").pop() || "";
    const key = `${frameName(cf)} ${file}${cf.lineNumber >= 0 && file ? ":" + (cf.lineNumber + 1) : ""}`;
    const f = frames.get(key) ?? { key, us: 0, cat };
    f.us += us;
    frames.set(key, f);
  }
  const busy = [...groups].filter(([cat]) => cat !== "idle").reduce((a, [, us]) => a + us, 0);
  return {
    kind, path, busy_ms: busy / 1000, idle_ms: (groups.get("idle") ?? 0) / 1000,
    top: [...frames.values()].filter((f) => f.cat !== "idle").sort((a, b) => b.us - a.us).slice(0, 15)
      .map((f) => ({ frame: f.key, ms: f.us / 1000, share: f.us / busy, category: f.cat })),
    groups: [...groups].filter(([cat]) => cat !== "idle").sort((a, b) => b[1] - a[1])
      .map(([cat, us]) => ({ category: cat, ms: us / 1000, share: us / busy })),
  };
}

function printProfile(p) {
  console.log(`\nV8 profile of ${p.kind} (${p.busy_ms.toFixed(0)} ms sampled busy, ${p.idle_ms.toFixed(0)} ms idle), written to ${p.path}`);
  console.log("top frames by self time:");
  for (const t of p.top) console.log(`  ${(t.share * 100).toFixed(1).padStart(5)} %  ${t.ms.toFixed(1).padStart(8)} ms  ${t.frame}  [${t.category}]`);
  console.log("grouped:");
  for (const g of p.groups) console.log(`  ${(g.share * 100).toFixed(1).padStart(5)} %  ${g.ms.toFixed(1).padStart(8)} ms  ${g.category}`);
}

// --- run (last: the classes and constants above are defined by now) ---------------------------------------

if (process.argv[2] === "--store") {
  await storeMain();
} else {
  await main();
}
