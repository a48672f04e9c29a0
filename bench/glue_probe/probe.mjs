// CPU per Worker invocation, for the glue work of issue 19 (interim, until bench/bench_worker_cpu.mjs):
// entry.Default in Pyodide 0.28.2 with the real workers-runtime-sdk 1.9.5, driven as workerd drives it.
// D1 is sqlite3 in a CPython child process reached through a worker thread (Atomics.wait), fetch answers come
// from the project's fakes (relay_tools.fakes) run in a second Pyodide, R2 is a Map: all called synchronously,
// so their CPU is timed and subtracted from the invocation's (process.cpuUsage, all threads).
//
//   node bench/glue_probe/probe.mjs [TREE] [--only webhook,cron] [--profile DIR] [--pyprof] [--phases] [--pass N]
//                                   [--env NAME=VALUE ...]   (e.g. --env RELAY_PLAN=free: the webhook only stores)
//
// TREE: a checkout to measure (default: this one; e.g. `git archive main | tar -x -C /tmp/main`). Needs
// `npm ci` and one conformance run (conformance/.cache holds the SDK). --profile writes V8 .cpuprofile files
// (webhooks 11-40, cron pass N) for bench/glue_probe/top.mjs; --pyprof writes cProfile tables (CPU clock,
// fakes excluded) as webhook.pyprof.txt and cron.pyprof.txt there (default: the temp folder). --phases prints, per
// webhook, the CPU (fakes excluded) inside each step of the path (inclusive: a step's time holds its callees'),
// from wrappers around ~30 functions: two clock reads each, no tracing, so the figures stay close to untraced ones.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values: opt, positionals } = parseArgs({ allowPositionals: true, options: {
  profile: { type: "string" }, pyprof: { type: "boolean" }, phases: { type: "boolean" }, hooks: { type: "string", default: "40" },
  only: { type: "string" }, pass: { type: "string", default: "3" },
  env: { type: "string", multiple: true, default: [] } } });
const EXTRA = Object.fromEntries(opt.env.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
const HERE = dirname(fileURLToPath(import.meta.url));
const SELF = resolve(HERE, "..", "..");
const REPO = resolve(positionals[0] ?? SELF);
const NM = join(SELF, "node_modules", "pyodide") + "/";
const SDK = join(SELF, "conformance", ".cache", "workers-runtime-sdk-1.9.5");
const { loadPyodide } = await import(NM + "pyodide.mjs");

// --- support side ---
const S = await loadPyodide({ indexURL: NM });
S.FS.mkdirTree("/repo"); S.mountNodeFS("/repo", REPO);
S.FS.mkdirTree("/glue"); S.mountNodeFS("/glue", HERE);
S.runPython("import sys; sys.dont_write_bytecode=True; sys.path.insert(0, '/glue'); import support");
const sup = S.pyimport("support");
let excluded = 0; let excludedTotal = 0;
globalThis.probeClock = () => { const u = process.cpuUsage(); return (u.user + u.system - excludedTotal) / 1e6; }; let d1wall = 0, d1calls = 0;  // microseconds of fake CPU
const cpuNow = () => { const u = process.cpuUsage(); return u.user + u.system; };

import { Worker } from "node:worker_threads";
const DB = join(tmpdir(), `glue-probe-d1-${process.pid}.sqlite`);
const sab = new SharedArrayBuffer(8 + (1 << 27));
const ctrl = new Int32Array(sab, 0, 2);
const d1w = new Worker(join(HERE, "d1worker.mjs"), { workerData: { sab, db: DB, migrations: join(REPO, "migrations"), script: join(HERE, "d1.py") } });
d1w.unref();
function d1(input) {
  Atomics.store(ctrl, 0, 0);
  d1w.postMessage(input);
  const w0 = performance.now();
  Atomics.wait(ctrl, 0, 0);
  d1wall += performance.now() - w0; d1calls += 1;
  return new TextDecoder().decode(new Uint8Array(sab, 8, Atomics.load(ctrl, 1)).slice());
}
function dbCounts() { return d1(JSON.stringify([["SELECT state, COUNT(*) AS n FROM outbox GROUP BY state", []]])); }
function runBatch(stmts) {
  const t0 = cpuNow();
  const out = JSON.parse(d1(JSON.stringify(stmts.map((s) => [s.sql, s.params]))));
  { const d = cpuNow() - t0; excluded += d; excludedTotal += d; }
  if (out.error) throw new Error(out.error);
  return out;
}
class D1PreparedStatement {
  constructor(sql, params = []) { this.sql = sql; this.params = params; }
  bind(...values) {
    for (const v of values) {
      if (v === undefined || typeof v === "bigint" || (v !== null && typeof v === "object")) {
        throw new Error(`D1_TYPE_ERROR: Type '${typeof v}' not supported for value '${v}'`);
      }
    }
    return new D1PreparedStatement(this.sql, values);
  }
  all() { return Promise.resolve(runBatch([this])[0]); }
  run() { return this.all(); }
}
class D1Database {
  prepare(sql) { return new D1PreparedStatement(sql); }
  batch(stmts) { return Promise.resolve(runBatch([...stmts])); }
}
const store = new Map();
class R2Bucket {
  put(key, value) { store.set(key, String(value)); return Promise.resolve({ key }); }
  get(key) { return Promise.resolve(store.has(key) ? { text: async () => store.get(key) } : null); }
  list(o = {}) { const p = o.prefix ?? ""; return Promise.resolve({ objects: [...store.keys()].filter((k) => k.startsWith(p)).map((key) => ({ key })), truncated: false }); }
}
let fetches = 0;
globalThis.fetch = async function fakeFetch(input, init = {}) {
  const t0 = cpuNow();
  fetches += 1;
  const url = typeof input === "string" ? input : input.url;
  const headers = Object.fromEntries(new Headers(init.headers ?? {}));
  const [status, h, data] = JSON.parse(sup.http(init.method ?? "GET", url, JSON.stringify(headers), init.body ?? ""));
  const response = new Response(data, { status, headers: h });
  { const d = cpuNow() - t0; excluded += d; excludedTotal += d; }
  return response;
};

// --- the Worker side ---
const W = await loadPyodide({ indexURL: NM });
W.FS.mkdirTree("/repo"); W.mountNodeFS("/repo", REPO);
W.FS.mkdirTree("/sdk"); W.mountNodeFS("/sdk", SDK); 
W.FS.mkdirTree("/runtime");
W.FS.writeFile("/runtime/_cloudflare_compat_flags.py", "python_request_headers_preserve_commas = False\n\ndef __getattr__(name):\n    return False\n");
W.registerJsModule("_pyodide_entrypoint_helper", {
  patchWaitUntil(ctx) { const o = ctx.waitUntil.bind(ctx); ctx.waitUntil = (w) => o(typeof w?.copy === "function" ? w.copy() : w); },
  cloudflareWorkersModule: {}, cloudflareSocketsModule: {}, doAnImport: (n) => import(n),
});
W.runPython(`
import sys
sys.dont_write_bytecode = True
sys.path[:0] = ["/repo/src", "/sdk", "/runtime"]
import entry
from workers import python_from_rpc
async def fetch(ctx, env, req):
    return (await entry.Default(ctx, env).fetch(python_from_rpc(req))).js_object
async def scheduled(ctx, env, c):
    await entry.Default(ctx, env).scheduled(c, env, ctx)
import cProfile, pstats, io
prof = None
def pystart():
    global prof
    import js
    prof = cProfile.Profile(js.probeClock); prof.enable()
def pystop(path):
    prof.disable(); s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(35)
    s2 = io.StringIO(); pstats.Stats(prof, stream=s2).sort_stats("cumulative").print_stats(45)
    open(path, "w").write(s.getvalue() + "\\n\\n" + s2.getvalue())
`);
if (opt.phases) W.runPython(`
import collections, functools, inspect, js
from relay.core import capi
from relay.jobs import consent, delivery, intake
from relay.jobs import bridge as bridge_jobs
from relay.outbox import delivery_log, ledger
from relay.web import routes
PH, PN = collections.defaultdict(float), collections.Counter()
def _timed(owner, name):
    f = getattr(owner, name)
    def done(t):
        PH[name] += js.probeClock() - t; PN[name] += 1
    if inspect.iscoroutinefunction(f):
        async def w(*a, **k):
            t = js.probeClock()
            try: return await f(*a, **k)
            finally: done(t)
    else:
        def w(*a, **k):
            t = js.probeClock()
            try: return f(*a, **k)
            finally: done(t)
    setattr(owner, name, functools.wraps(f)(w))
# entry._response builds the Response since the webhook CPU work (it wraps the SDK's class, so that stays as it is)
_made = "_response _body" if hasattr(entry, "_response") else "Response"
for owner, names in [(entry.Default, "fetch runtime"), (entry, "_headers _plain _options " + _made),
                     (entry.D1, "run batch"), (entry.R2, "put"), (entry.FetchHttp, "send"),
                     (routes, "handle _read_limited _send_after"),
                     (intake, "receive_webhook load_shop verify parse_webhook row_for"), (capi, "build_event events_request classify"),
                     (bridge_jobs, "hold_until"), (ledger.Ledger, "record claim_order finish"),
                     (delivery, "send_due deliver current_currency _post"), (consent, "prepare"),
                     (delivery_log.DeliveryLog, "add flush")]:
    for name in names.split():
        _timed(owner, name)
_from_rpc = python_from_rpc
def python_from_rpc(request):
    t = js.probeClock()
    try: return _from_rpc(request)
    finally: PH["python_from_rpc"] += js.probeClock() - t; PN["python_from_rpc"] += 1
def phreset():
    PH.clear(); PN.clear()
def phases(n):
    for k, v in sorted(PH.items(), key=lambda kv: -kv[1]):
        print(f"  {k:18s} {v / n * 1000:6.2f} ms  ({PN[k] / n:g} calls)")
`);
const OUT = opt.profile ?? tmpdir();
mkdirSync(OUT, { recursive: true });
W.FS.mkdirTree("/out"); W.mountNodeFS("/out", resolve(OUT));
const harness = W.globals;
const pyFetch = harness.get("fetch");
const pyScheduled = harness.get("scheduled");

function makeEnv(shops) {
  return { ...JSON.parse(sup.env(shops)), ...EXTRA, DB: new D1Database(), LOGS: new R2Bucket() };
}

async function invoke(fn) {
  const pending = [];
  const ctx = { waitUntil: (w) => pending.push(Promise.resolve(w)), passThroughOnException() {} };
  excluded = 0; fetches = 0;
  const t0 = cpuNow();
  const out = await fn(ctx);
  const settled = await Promise.allSettled(pending);
  const cpu = (cpuNow() - t0 - excluded) / 1000;
  for (const s of settled) if (s.status === "rejected") throw new Error(String(s.reason));
  return { cpu, out, fetches };
}

const tpl = JSON.parse(readFileSync(join(REPO, "tests/fixtures/lightspeed/webhook-order-paid.raw.json"), "utf8"));
function webhook(n) {
  const o = structuredClone(tpl);
  const now = Date.now();
  const stamp = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "+00:00");
  o.order.id = 500000000 + n; o.order.number = `WH${n}`;
  o.order.createdAt = stamp(now - 600_000); o.order.updatedAt = stamp(now - 540_000);
  const body = Buffer.from(JSON.stringify(o));
  const sig = createHash("md5").update(Buffer.concat([body, Buffer.from("bench-lightspeed-secret")])).digest("hex");
  return new Request("https://relay.example/?shop=shop00", { method: "POST", body,
    headers: { "content-type": "application/json", "x-shop-id": "318842", "x-signature": sig, "cf-connecting-ip": "203.0.113.9" } });
}

const stats = (xs) => { const s = [...xs].sort((a, b) => a - b); const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return `median ${q(0.5).toFixed(1)}  p95 ${q(0.95).toFixed(1)}  max ${s[s.length - 1].toFixed(1)}  (n=${s.length})`; };

let session;
async function profStart() { if (!opt.profile) return; session = new Session(); session.connect(); await session.post("Profiler.enable"); await session.post("Profiler.setSamplingInterval", { interval: 250 }); await session.post("Profiler.start"); }
async function profStop(name) {
  if (!opt.profile) return;
  const { profile } = await session.post("Profiler.stop");
  mkdirSync(opt.profile, { recursive: true });
  writeFileSync(join(opt.profile, name + ".cpuprofile"), JSON.stringify(profile));
  session.disconnect();
}

const only = opt.only ? opt.only.split(",") : null;
const want = (k) => !only || only.includes(k);
const results = {};

if (want("webhook")) {
  sup.missed(1, 0);
  const env = makeEnv(1);
  const cpus = [];
  const N = Number(opt.hooks);
  for (let i = 0; i < N; i++) {
    if (i === 10) { await profStart(); if (opt.pyprof) harness.get("pystart")(); if (opt.phases) harness.get("phreset")(); }
    const req = webhook(i);
    const r = await invoke((ctx) => pyFetch(ctx, env, req));
    if (i === 0) results.first_webhook = r.cpu;
    if (i >= 10) cpus.push(r.cpu);
  }
  if (opt.pyprof) harness.get("pystop")("/out/webhook.pyprof.txt");
  if (opt.phases) { console.log("CPU per webhook inside each step (inclusive):"); harness.get("phases")(N - 10); }
  console.log(`d1 calls ${d1calls}, wall in d1 ${d1wall.toFixed(0)} ms, total wall ${performance.now().toFixed(0)}`);
  await profStop("webhook");
  console.log(`webhook (accept + waitUntil send): ${stats(cpus)}  first ${results.first_webhook.toFixed(1)}`);
}

if (want("cron")) {
  sup.missed(3, 300);
  const env = makeEnv(3);
  const passes = [];
  let before = sup.meta_events();
  let profiled = false;
  for (let i = 0; i < 60; i++) {
    const busy = i === Number(opt.pass) && !profiled;
    if (busy) { await profStart(); if (opt.pyprof) harness.get("pystart")(); }
    const r = await invoke((ctx) => pyScheduled(ctx, env, { cron: "*/10 * * * *", scheduledTime: Date.now(), type: "scheduled" }));
    if (busy) { if (opt.pyprof) harness.get("pystop")("/out/cron.pyprof.txt"); await profStop("cron-busy"); profiled = true; }
    const now = sup.meta_events();
    passes.push({ cpu: r.cpu, events: now - before, fetches: r.fetches });
    before = now;
    const counts = Object.fromEntries(JSON.parse(dbCounts())[0].results.map((r) => [r.state, r.n]));
    if (i > 3 && passes.at(-1).events === 0 && !counts.due && !counts.retry && !counts.sending) {
      // two more idle passes
      break;
    }
  }
  const idle = [];
  for (let i = 0; i < 10; i++) idle.push((await invoke((ctx) => pyScheduled(ctx, env, { cron: "*/10 * * * *", scheduledTime: Date.now(), type: "scheduled" }))).cpu);
  const busy = passes.filter((p) => p.events > 0);
  console.log(`cron first pass: ${passes[0].cpu.toFixed(1)} ms, ${passes[0].events} events, ${passes[0].fetches} fetches`);
  console.log(`cron busy passes (${busy.length}, ${(busy.reduce((a, p) => a + p.events, 0) / busy.length).toFixed(1)} events/pass): ${stats(busy.slice(1).map((p) => p.cpu))}`);
  console.log(`cron passes: ${passes.map((p) => `${p.cpu.toFixed(0)}/${p.events}`).join(" ")}`);
  console.log(`cron idle: ${stats(idle)}`);
  console.log(`sent: ${sup.sent()}  ledger: ${dbCounts()}`);
}
d1w.postMessage("exit"); process.exit(0);
