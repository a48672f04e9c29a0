// The Worker's Python as workerd runs it, set up once for every Node harness that drives src/entry.py:
// Pyodide 0.28.2 from node_modules, the real workers-runtime-sdk 1.9.5 (pinned by hash, cached in
// conformance/.cache), the SDK's compat flags for wrangler.toml's date, and the two modules workerd provides.
// Also the pieces those harnesses share around it: the migration splitter, miniflare's D1/R2, and the CPython
// helper processes (the fakes) that answer in JSON lines.
//
// Why it exists: conformance/check.mjs (the conformance run, tests/test_conformance.py) and
// bench/bench_worker_cpu.mjs (the Worker CPU benchmark, tests/test_bench_worker_cpu.py) must set up the same
// runtime, or the benchmark measures something the conformance run never checked. Both import this module.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

// The checkout this module lives in: node_modules, the SDK cache, the fixtures and the fakes come from here.
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const PYODIDE_VERSION = "0.28.2";
export const SDK_VERSION = "1.9.5";
export const SDK_DIR = join(REPO, "conformance", ".cache", `workers-runtime-sdk-${SDK_VERSION}`);

export function fail(message) {
  throw new Error(message);
}

export function run(cmd, args, what, cwd = REPO) {
  // A child process run to its end; its stdout as bytes, or an error that says what failed and its stderr.
  const result = spawnSync(cmd, args, { cwd, maxBuffer: 64 * 1024 * 1024 });
  if (result.error) fail(`${what}: could not start ${cmd} (${result.error.code ?? result.error.message})`);
  if (result.status !== 0) {
    fail(`${what}: ${cmd} ${args.join(" ")} exited ${result.status}\n${result.stderr.toString().trim()}`);
  }
  return result.stdout;
}

export function wranglerConfig(repo = REPO) {
  // The Worker's compatibility date and flags decide its Pyodide and what the SDK's compat flags say.
  const toml = readFileSync(join(repo, "wrangler.toml"), "utf8");
  const date = /^compatibility_date\s*=\s*"([\d-]+)"/m.exec(toml)?.[1];
  const flags = [...(/^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1] ?? "").matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  if (!date) fail(`${join(repo, "wrangler.toml")} has no compatibility_date`);
  return { date, flags };
}

// What the SDK's `_cloudflare_compat_flags` answers in the runtime for that date; everything else is off.
export const compatFlags = ({ date }) => ({ python_request_headers_preserve_commas: date >= "2026-02-17" });

export function ensureSdk(python) {
  // The Workers SDK as pywrangler vendors it into python_modules/: pure Python, pinned by hash.
  // Installed beside the cache and renamed into place, so an interrupted or concurrent run never leaves half of it.
  if (existsSync(join(SDK_DIR, "workers", "__init__.py"))) return SDK_DIR;
  const partial = `${SDK_DIR}.partial-${process.pid}`;
  mkdirSync(dirname(SDK_DIR), { recursive: true });
  try {
    run("uv", ["pip", "install", "--quiet", "--no-deps", "--require-hashes", "--python", python,
      "--target", partial, "-r", join(REPO, "conformance", "sdk-requirements.txt")],
      "installing workers-runtime-sdk (needs uv and PyPI)");
    try {
      renameSync(partial, SDK_DIR);
    } catch (error) {
      if (!existsSync(join(SDK_DIR, "workers", "__init__.py"))) throw error;  // another run got there first
    }
  } finally {
    rmSync(partial, { recursive: true, force: true });
  }
  return SDK_DIR;
}

export async function startPyodide({ repo = REPO, sdkDir, sysPath }) {
  // Pyodide set up as workerd sets it up: `repo` at /repo, the SDK at /sdk, workerd's modules at /runtime;
  // sysPath goes first on sys.path. Nothing of the Worker is imported yet.
  const indexURL = join(REPO, "node_modules", "pyodide") + "/";
  if (!existsSync(join(indexURL, "pyodide.mjs"))) fail(`node_modules/pyodide is missing: run \`npm ci\` in ${REPO}`);
  const { loadPyodide } = await import(join(indexURL, "pyodide.mjs"));
  const pyodide = await loadPyodide({ indexURL });
  if (pyodide.version !== PYODIDE_VERSION) {
    fail(`node_modules/pyodide is ${pyodide.version}, the Workers runtime uses ${PYODIDE_VERSION}: run \`npm ci\``);
  }
  pyodide.FS.mkdirTree("/repo");
  pyodide.mountNodeFS("/repo", repo);
  pyodide.FS.mkdirTree("/sdk");
  pyodide.mountNodeFS("/sdk", sdkDir);
  // The two modules workerd provides to the SDK; everything else is the real SDK.
  pyodide.FS.mkdirTree("/runtime");
  pyodide.FS.writeFile("/runtime/_cloudflare_compat_flags.py",
    Object.entries(compatFlags(wranglerConfig(repo))).map(([k, v]) => `${k} = ${v ? "True" : "False"}\n`).join("") +
    "\n\ndef __getattr__(name):\n    return False\n");
  pyodide.registerJsModule("_pyodide_entrypoint_helper", {
    patchWaitUntil(ctx) {
      // workerd keeps the Python awaitable alive (copy) and awaits it after the handler returns.
      const original = ctx.waitUntil.bind(ctx);
      ctx.waitUntil = (work) => original(typeof work?.copy === "function" ? work.copy() : work);
    },
    cloudflareWorkersModule: {},
    cloudflareSocketsModule: {},
    doAnImport: (name) => import(name),
  });
  pyodide.runPython(`
import sys
sys.dont_write_bytecode = True  # never leave Pyodide's .pyc files in the working tree
sys.path[:0] = ${JSON.stringify(sysPath)}
`);
  return pyodide;
}

export async function settle(pending) {
  // An invocation's ctx.waitUntil work, awaited as workerd awaits it after answering; any failure fails the run.
  const failures = (await Promise.allSettled(pending)).filter((s) => s.status === "rejected").map((s) => String(s.reason));
  if (failures.length) fail(`waitUntil work failed:\n${failures.join("\n")}`);
}

// --- D1 migrations and miniflare ---------------------------------------------------------------------------

export function splitStatements(sql) {
  // Split a migration file into statements: ";" ends one, "--" starts a comment, both outside '...' only.
  const out = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < sql.length; i += 1) {
    const c = sql[i];
    if (quoted) {
      current += c;
      if (c === "'") quoted = false;
    } else if (c === "'") {
      current += c;
      quoted = true;
    } else if (c === "-" && sql[i + 1] === "-") {
      while (i < sql.length && sql[i] !== "\n") i += 1;
      current += "\n";
    } else if (c === ";") {
      if (current.trim()) out.push(current.trim());
      current = "";
    } else {
      current += c;
    }
  }
  if (current.trim()) out.push(current.trim());
  return out;
}

export function readMigrations(repo = REPO) {
  // What `wrangler d1 migrations apply` runs: every migrations/*.sql in name order (each one batch).
  return readdirSync(join(repo, "migrations")).filter((f) => f.endsWith(".sql")).sort()
    .map((file) => ({ file, sql: readFileSync(join(repo, "migrations", file), "utf8") }));
}

// What workerd itself answers for entry._AsJson's construction (GET /as-json on the stub): TextEncoder.encode of an
// object whose toString is JSON.stringify bound to a box. Pyodide in Node cannot show that workerd's TextEncoder (C++)
// reads its argument with JS's ToString as V8's does; conformance/check.mjs's send-path check asks it.
export const AS_JSON_VALUE = { results: [{ text: "é 😀 \"q\"", n: 3, none: null }], meta: { changes: 1 } };

export async function startMiniflare(name, { d1Databases, r2Buckets }) {
  // miniflare (workerd from the wrangler package) for its D1 databases and R2 buckets; its script is a stub that
  // also answers GET /as-json (AS_JSON_VALUE through entry._AsJson's construction, as bytes).
  const { Miniflare } = await import(join(REPO, "node_modules", "miniflare", "dist", "src", "index.js"));
  return new Miniflare({
    modules: true,
    script: `export default { fetch(request) {
      if (new URL(request.url).pathname !== "/as-json") return new Response('${name}');
      const box = [], holder = {};
      holder.toString = Function.prototype.bind.call(JSON.stringify, JSON, box);
      box[0] = ${JSON.stringify(AS_JSON_VALUE)};
      return new Response(new TextEncoder().encode(holder));
    } }`,
    compatibilityDate: "2026-04-20",
    d1Databases,
    r2Buckets,
  });
}

// --- the fakes' process ------------------------------------------------------------------------------------

export class JsonLinesChild {
  // A CPython process (the project's fakes on 127.0.0.1) that prints its URLs as a first JSON line, then one
  // JSON line for each command written to its stdin; it ends when its stdin closes.
  constructor(name, timeoutS) {
    this.name = name;
    this.timeoutS = timeoutS;
  }
  async start(python, args) {
    this.proc = spawn(python, args, { cwd: REPO });
    this.stderr = "";
    this.proc.stderr.on("data", (d) => { this.stderr += d; });
    this.lines = createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
    this.urls = await this.next(`starting ${this.name}`);
    return this;
  }
  async next(what) {
    const line = await Promise.race([
      this.lines.next(),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer in ${this.timeoutS} s`)), this.timeoutS * 1000).unref()),
    ]).catch((e) => fail(`${what}: ${e.message}\n${this.stderr}`));
    if (line.done) fail(`${what}: ${this.name} exited\n${this.stderr}`);
    return JSON.parse(line.value);
  }
  async ask(command, what) {
    this.proc.stdin.write(`${command}\n`);
    return this.next(what);
  }
  stop() {
    this.proc?.stdin.end();
  }
}
