#!/usr/bin/env node
// Side-by-side with DuckDB's own Parquet writer, on the rows parquet_bench wrote.
//
//   build/src/export/parquet_bench /tmp/usagedb_bench.parquet          # our file (10M rows)
//   node tests/js/duckdb_bench.mjs /tmp/usagedb_bench.parquet [OUT_DIR] [--threads N]
//
// Or through the real export path (a database filled by `usagedb ingest`):
//   node tests/js/duckdb_bench.mjs OUT.parquet [OUT_DIR] --usagedb build/usagedb --db-root DB
// 0. runs `usagedb export-parquet OUT.parquet` and `... --partition-by date` under
//    /usr/bin/time (wall time, peak RSS of the whole process), then compares as below.
//
// 1. DuckDB reads our file and checks it (row count, exact sum of quantity, distinct ids).
// 2. DuckDB loads the rows into an in-memory table, then writes them with
//    COPY t TO ... (FORMAT parquet, COMPRESSION zstd): the pure write, timed.
// 3. It also times the streaming COPY (SELECT * FROM read_parquet(ours)) TO ... (read + write).
// 4. The same aggregate over both files, timed, to compare read cost.
// Prints one JSON object per measurement. DuckDB uses all cores unless --threads is given;
// parquet_bench is single-threaded.
import { existsSync, statSync, rmSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
if (!existsSync(path.join(here, 'node_modules', '@duckdb', 'node-api'))) {
  console.log('SKIP: tests/js/node_modules is missing; run scripts/setup.sh');
  process.exit(77);
}
const args = process.argv.slice(2);
function flag(name) {
  const i = args.indexOf(name);
  if (i < 0) return null;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
}
const threadsFlag = flag('--threads');
const threads = threadsFlag !== null ? Number(threadsFlag) : null;
const usagedbBin = flag('--usagedb');
const dbRoot = flag('--db-root');
const ours = args[0] ?? '/tmp/usagedb_bench.parquet';
const outDir = args[1] ?? path.join(path.dirname(ours), 'duckdb_bench');
let exportStats = null;
if (usagedbBin) {
  // 0. The real export path, timed with /usr/bin/time (peak RSS of the usagedb process).
  const runExport = (out, extra) => {
    rmSync(out, { recursive: true, force: true });
    const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %M', usagedbBin, '--db-root', dbRoot,
                                          'export-parquet', out, ...extra], { encoding: 'utf8' });
    if (r.status !== 0) {
      console.error(r.stdout, r.stderr);
      process.exit(1);
    }
    const [, secs, kib] = /TIME ([\d.]+) (\d+)/.exec(r.stderr);
    const events = Number(/exported (\d+) events/.exec(r.stdout)[1]);
    const bytes = Number(/: (\d+) bytes in/.exec(r.stdout)[1]);
    return { events, seconds: Number(secs), rows_per_s: Math.round(events / Number(secs)),
             peak_rss_mib: +(Number(kib) / 1024).toFixed(1), file_bytes: bytes,
             bytes_per_row: +(bytes / events).toFixed(2), summary: r.stdout.trim() };
  };
  const single = runExport(ours, []);
  console.log(JSON.stringify({ step: 'usagedb_export_single', ...single }));
  const tree = runExport(`${ours}.tree`, ['--partition-by', 'date']);
  console.log(JSON.stringify({ step: 'usagedb_export_partitioned', ...tree }));
  exportStats = { single, tree };
}
if (!existsSync(ours)) {
  console.error(`${ours} does not exist: run parquet_bench first`);
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

const { DuckDBInstance } = await import('@duckdb/node-api');
const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
if (threads) await conn.run(`SET threads = ${threads}`);
// A shared machine: cap DuckDB's memory and let it spill next to the output.
await conn.run(`SET memory_limit = '3GB'`);
const q = (s) => `'${s.replaceAll("'", "''")}'`;
await conn.run(`SET temp_directory = ${q(path.join(outDir, 'tmp'))}`);
async function one(sql) {
  const r = await conn.runAndReadAll(sql);
  return r.getRowObjectsJS()[0];
}
async function timed(label, sql) {
  const t0 = process.hrtime.bigint();
  await conn.run(sql);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return s;
}

const [{ version }] = [await one('SELECT version() AS version')];
const [{ th }] = [await one("SELECT current_setting('threads') AS th")];
const rows = Number((await one(`SELECT count(*) AS n FROM read_parquet(${q(ours)})`)).n);
const oursBytes = statSync(ours).size;

// 1. Read-back check of our file at full size.
const check = await one(`SELECT count(*) AS n, sum(quantity)::VARCHAR AS total,
    count(DISTINCT event_id) AS ids, count(*) FILTER (WHERE quantity < 0) AS negative
    FROM read_parquet(${q(ours)})`);
console.log(JSON.stringify({ step: 'read_check', duckdb: version, threads: Number(th), rows,
  sum_quantity: check.total, distinct_event_ids: Number(check.ids),
  negative_rows: Number(check.negative) }));

// 2. Pure write: load into a table, then COPY it out.
const loadS = await timed('load', `CREATE TABLE t AS SELECT * FROM read_parquet(${q(ours)})`);
const duckFile = path.join(outDir, 'duckdb_copy.parquet');
rmSync(duckFile, { force: true });
const writeS = await timed('write', `COPY t TO ${q(duckFile)} (FORMAT parquet, COMPRESSION zstd)`);
const duckBytes = statSync(duckFile).size;
console.log(JSON.stringify({ step: 'duckdb_write_from_table', rows, seconds: +writeS.toFixed(3),
  rows_per_s: Math.round(rows / writeS), file_bytes: duckBytes,
  bytes_per_row: +(duckBytes / rows).toFixed(2), load_seconds: +loadS.toFixed(3) }));

// 3. Streaming read + write.
const streamFile = path.join(outDir, 'duckdb_stream.parquet');
rmSync(streamFile, { force: true });
const streamS = await timed('stream', `COPY (SELECT * FROM read_parquet(${q(ours)}))
    TO ${q(streamFile)} (FORMAT parquet, COMPRESSION zstd)`);
console.log(JSON.stringify({ step: 'duckdb_copy_read_and_write', rows,
  seconds: +streamS.toFixed(3), rows_per_s: Math.round(rows / streamS),
  file_bytes: statSync(streamFile).size }));

// 4. Same aggregate over both files.
const agg = (f) => `SELECT account_id, meter_id, sum(quantity) FROM read_parquet(${q(f)})
    WHERE timestamp_ms >= 1778198400000 GROUP BY ALL`;
const aggOurs = await timed('agg_ours', agg(ours));
const aggDuck = await timed('agg_duck', agg(duckFile));
// Order-independent fingerprint of every value of every row (a full EXCEPT ALL would need
// gigabytes of memory at 10M rows).
const fingerprint = async (f) => (await one(`SELECT count(*) AS n,
    sum(hash(event_id, kind, correction_original_event_id, correction_reason, account_id,
             subscription_id, product_id, meter_id, model_id, timestamp_ms, quantity, unit,
             source, dimensions_canonical, ingested_at_ms)::HUGEINT)::VARCHAR AS h
    FROM read_parquet(${q(f)})`));
const fpOurs = await fingerprint(ours);
const fpDuck = await fingerprint(duckFile);
console.log(JSON.stringify({ step: 'scan_aggregate', ours_seconds: +aggOurs.toFixed(3),
  duckdb_file_seconds: +aggDuck.toFixed(3),
  same_rows: fpOurs.n === fpDuck.n && fpOurs.h === fpDuck.h }));

console.log(JSON.stringify({ step: 'summary', rows, usagedb_file_bytes: oursBytes,
  duckdb_file_bytes: duckBytes, size_ratio_usagedb_over_duckdb: +(oursBytes / duckBytes).toFixed(3),
  duckdb_write_rows_per_s: Math.round(rows / writeS),
  duckdb_memory_limit: '3GB', node_peak_rss_mib: +(process.resourceUsage().maxRSS / 1024).toFixed(1),
  ...(exportStats ? {
    usagedb_export_rows_per_s: exportStats.single.rows_per_s,
    usagedb_export_peak_rss_mib: exportStats.single.peak_rss_mib,
    usagedb_partitioned_export_rows_per_s: exportStats.tree.rows_per_s,
    usagedb_partitioned_export_peak_rss_mib: exportStats.tree.peak_rss_mib,
    usagedb_partitioned_bytes: exportStats.tree.file_bytes,
    export_throughput_over_duckdb_write: +(exportStats.single.rows_per_s / (rows / writeS)).toFixed(2),
  } : {}) }));
