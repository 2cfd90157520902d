// The lifecycle peer of bench/scaleout.sh: graphile-worker (npm, pinned in
// package.json / package-lock.json) running one task, "noop", which does for a
// job what reel's command pipeline does: a fresh workspace with output/, the
// same no-op process spawned in it (bench/lib/noop_job.c, built by the script),
// its stdout/stderr read, success only when it exited 0 and left a non-empty
// output/final_video.mp4, the artifact moved into a storage directory
// (<storage>/<job id>/final_video.mp4, by rename, as reel's local storage does),
// and the workspace removed. graphile-worker then deletes the finished job row.
//
//   node runner.js migrate             install graphile-worker's schema and exit
//   node runner.js add N               queue N "noop" jobs in one statement and exit
//   node runner.js work CONCURRENCY    run jobs until SIGTERM/SIGINT
//
// Environment: DATABASE_URL (postgres://...), NOOP_JOB (path of the no-op binary),
// PEER_WORK_ROOT (where workspaces go), PEER_STORAGE (where artifacts go).
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const path = require("path");
const { run, runMigrations } = require("graphile-worker");
const { Pool } = require("pg");

const connectionString = process.env.DATABASE_URL;
const noopJob = process.env.NOOP_JOB;
const workRoot = process.env.PEER_WORK_ROOT || "/tmp";
const storage = process.env.PEER_STORAGE || "/tmp";

// Runs the no-op process in cwd; resolves with its exit code and output.
function runProcess(cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(noopJob, [], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    const out = [];
    child.stdout.on("data", (d) => out.push(d));
    child.stderr.on("data", (d) => out.push(d));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, output: Buffer.concat(out).toString() }));
  });
}

const taskList = {
  async noop(payload, helpers) {
    const workspace = await fs.promises.mkdtemp(path.join(workRoot, "job-"));
    try {
      await fs.promises.mkdir(path.join(workspace, "output"));
      const r = await runProcess(workspace);
      if (r.code !== 0) throw new Error(`the pipeline exited with ${r.code ?? r.signal}: ${r.output.slice(-500)}`);
      const artifact = path.join(workspace, "output", "final_video.mp4");
      const st = await fs.promises.stat(artifact).catch(() => null);
      if (!st || !st.isFile() || st.size === 0) throw new Error("the pipeline did not write output/final_video.mp4");
      const dest = path.join(storage, String(helpers.job.id));
      await fs.promises.mkdir(dest, { recursive: true });
      await fs.promises.rename(artifact, path.join(dest, "final_video.mp4"));
    } finally {
      await fs.promises.rm(workspace, { recursive: true, force: true });
    }
  },
};

async function main() {
  const [cmd, arg] = process.argv.slice(2);
  if (!connectionString) throw new Error("DATABASE_URL is not set");
  if (cmd === "migrate") {
    await runMigrations({ connectionString });
  } else if (cmd === "add") {
    const pool = new Pool({ connectionString });
    await pool.query(
      "SELECT graphile_worker.add_job('noop', json_build_object('n', g)) FROM generate_series(1, $1::int) g",
      [parseInt(arg, 10)],
    );
    await pool.end();
  } else if (cmd === "work") {
    if (!noopJob) throw new Error("NOOP_JOB is not set");
    const concurrency = parseInt(arg || "4", 10);
    // graphile-worker's default pool is 10 connections; one per concurrent job + its listener is enough
    const runner = await run({ connectionString, concurrency, maxPoolSize: concurrency + 2, taskList,
                               pollInterval: 2000, noHandleSignals: false });
    await runner.promise;
  } else {
    throw new Error("usage: node runner.js migrate | add N | work CONCURRENCY");
  }
}

main().catch((e) => {
  console.error(`graphile peer: ${e.stack || e}`);
  process.exit(1);
});
