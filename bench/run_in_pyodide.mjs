#!/usr/bin/env node
// Runs a Python script of this repository inside Pyodide 0.28.2 (the Python of the Workers runtime)
// on Node, offline: the repository is mounted at /repo, src/ and the script's folder are on sys.path.
//
//   node bench/run_in_pyodide.mjs bench/bench_webhook.py --inner
//
// Used by the bench/ scripts to measure the same code in the Worker's Python. Needs `npm ci`.

import { existsSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
// --settle-ms N: wait N ms after loading, so V8's background compilation of Pyodide's WebAssembly is done
// before the script starts and its CPU is not counted against the script's first steps.
const settle = argv[0] === "--settle-ms" ? Number(argv.splice(0, 2)[1]) : 0;
const [script, ...args] = argv;
if (!script) {
  console.error("usage: node bench/run_in_pyodide.mjs [--settle-ms N] SCRIPT.py [ARGS...]");
  process.exit(2);
}
const indexURL = join(REPO, "node_modules", "pyodide") + "/";
if (!existsSync(join(indexURL, "pyodide.mjs"))) {
  console.error("node_modules/pyodide is missing: run `npm ci` in the repository root");
  process.exit(2);
}
const { loadPyodide } = await import(join(indexURL, "pyodide.mjs"));
const pyodide = await loadPyodide({ indexURL, stdout: (line) => console.log(line), stderr: (line) => console.error(line) });
pyodide.FS.mkdirTree("/repo");
pyodide.mountNodeFS("/repo", REPO);
const path = "/repo/" + relative(REPO, resolve(script)).split("\\").join("/");
if (settle > 0) await new Promise((done) => setTimeout(done, settle));
pyodide.globals.set("script_path", path);
pyodide.globals.set("script_args", args);
try {
  await pyodide.runPythonAsync(`
import os, runpy, sys
sys.dont_write_bytecode = True
sys.path[:0] = [os.path.dirname(script_path), "/repo/src"]
sys.argv = [script_path, *script_args.to_py()]
try:
    runpy.run_path(script_path, run_name="__main__")
except SystemExit as exc:
    if exc.code not in (None, 0):
        raise
`);
} catch (error) {
  console.error(String(error?.message ?? error));
  process.exit(1);
}
