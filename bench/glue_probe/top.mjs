// Summarize a .cpuprofile: self time by frame and by category, skipping the fakes' subtrees.
import { readFileSync } from "node:fs";
const prof = JSON.parse(readFileSync(process.argv[2], "utf8"));
const N = Number(process.argv[3] ?? 25);
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const EXCL = new Set(["runBatch", "fakeFetch", "d1"]);
const excluded = new Map();
function isExcluded(id) {
  if (excluded.has(id)) return excluded.get(id);
  const n = byId.get(id);
  let r = EXCL.has(n.callFrame.functionName) && n.callFrame.url.includes("probe.mjs");
  if (!r && parent.has(id)) r = isExcluded(parent.get(id));
  excluded.set(id, r); return r;
}
const self = new Map();
const deltas = prof.timeDeltas; let total = 0;
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i]; const dt = deltas[i + 1] ?? 0;
  if (isExcluded(id)) continue;
  const n = byId.get(id); if (n.callFrame.functionName === "(idle)" || n.callFrame.functionName === "(program)" && false) continue;
  if (n.callFrame.functionName === "(idle)") continue;
  self.set(id, (self.get(id) ?? 0) + dt); total += dt;
}
const frames = new Map(); const cats = new Map();
function cat(cf) {
  const f = cf.functionName, u = cf.url;
  if (f === "(garbage collector)") return "GC";
  if (f === "(program)") return "V8 (program)";
  if (u.startsWith("wasm://")) return "Python interpreter (wasm)";
  if (u.includes("pyodide.asm.js")) return "Pyodide JS<->Python bridge (pyodide.asm.js)";
  if (u.includes("undici") || u.startsWith("node:")) return "Node (undici, timers, streams)";
  if (u.includes("probe.mjs")) return "probe/fakes JS";
  return "other JS " + (u.split("/").pop() || f);
}
for (const [id, t] of self) {
  const cf = byId.get(id).callFrame;
  const key = `${cf.functionName || "(anon)"} ${cf.url.split("/").pop()}${cf.url.startsWith("wasm") ? "" : ":" + cf.lineNumber}`;
  frames.set(key, (frames.get(key) ?? 0) + t);
  const c = cat(cf); cats.set(c, (cats.get(c) ?? 0) + t);
}
console.log(`total sampled (fakes excluded): ${(total / 1000).toFixed(0)} ms`);
for (const [c, t] of [...cats].sort((a, b) => b[1] - a[1])) console.log(`  ${(100 * t / total).toFixed(1).padStart(5)} %  ${c}`);
console.log("top self frames:");
for (const [k, t] of [...frames].sort((a, b) => b[1] - a[1]).slice(0, N)) console.log(`  ${(100 * t / total).toFixed(1).padStart(5)} %  ${k}`);
