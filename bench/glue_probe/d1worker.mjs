import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { parentPort, workerData } from "node:worker_threads";
const { sab, db, migrations, script } = workerData;
const ctrl = new Int32Array(sab, 0, 2);
const bytes = new Uint8Array(sab, 8);
const child = spawn(process.env.PYTHON || "python3", [script, db, migrations], { stdio: ["pipe", "pipe", "inherit"] });
const lines = createInterface({ input: child.stdout });
lines.on("line", (line) => {
  const { written } = new TextEncoder().encodeInto(line, bytes);
  Atomics.store(ctrl, 1, written);
  Atomics.store(ctrl, 0, 1);
  Atomics.notify(ctrl, 0);
});
parentPort.on("message", (m) => { if (m === "exit") { child.kill(); process.exit(0); } child.stdin.write(m + "\n"); });
