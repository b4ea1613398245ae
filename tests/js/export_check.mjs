#!/usr/bin/env node
// End-to-end check of `usagedb export-parquet` with readers we did not write.
//
//   node export_check.mjs --usagedb BIN --gen BIN --dump BIN --work DIR [--events N]
//
// 1. Builds a database with the `usagedb` CLI: `usagedb ingest` of a fixture of edge values
//    (±(10^38−1), 2^64, negative corrections, retractions, nulls, escapes and non-ASCII in the
//    dimensions, events on both sides of month boundaries) and of N events from usagedb_gen.
// 2. Exports it with the CLI: one file, a `--partition-by date` tree, a filtered export,
//    small row groups (USAGEDB_EXPORT_ROW_GROUP_ROWS), an `--as-of` export after more ingests,
//    and empty exports.
// 3. Dumps the raw events with usagedb_export_dump (the raw audit API, DB::ScanEvents) and
//    compares every row and column of every export with it in DuckDB (full outer join on
//    event_id), and every row of the single file again with parquet-wasm (arrow-rs).
// 4. DuckDB checks schema, zstd, statistics (exact per row group, signed for quantity, the
//    deprecated min/max absent), predicates around negative quantities, hive_partitioning.
// Exit 0 = pass, 1 = failure, 77 = skipped (tests/js/node_modules missing).
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync, openSync, closeSync,
         readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const here = path.dirname(fileURLToPath(import.meta.url));
if (!existsSync(path.join(here, 'node_modules', '@duckdb', 'node-api'))) {
  console.log('SKIP: tests/js/node_modules is missing; run scripts/setup.sh');
  process.exit(77);
}
const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const k of ['usagedb', 'gen', 'dump', 'work']) {
  if (!args[k]) {
    console.error('usage: node export_check.mjs --usagedb BIN --gen BIN --dump BIN --work DIR [--events N]');
    process.exit(2);
  }
}
const EVENTS = Number(args.events ?? 200000);
const work = path.resolve(args.work);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const W = (name) => path.join(work, name);
const DB = W('db');

const { DuckDBInstance } = await import('@duckdb/node-api');
const parquetWasm = await import('parquet-wasm');
const { tableFromIPC } = await import('apache-arrow');

let failures = 0;
let checks = 0;
async function check(name, fn) {
  checks++;
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}\n     ${String(e.message).split('\n').slice(0, 14).join('\n     ')}`);
  }
}

// Runs a binary; returns {status, stdout, stderr}. stdout may go to a file.
function run(bin, argv, { env = {}, stdoutFile = null } = {}) {
  const fd = stdoutFile ? openSync(stdoutFile, 'w') : null;
  const r = spawnSync(bin, argv, {
    env: { ...process.env, ...env },
    stdio: ['ignore', fd ?? 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
    encoding: 'utf8',
  });
  if (fd !== null) closeSync(fd);
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
function usagedb(argv, opts) {
  const t0 = Date.now();
  const r = run(args.usagedb, ['--db-root', DB, ...argv], opts);
  console.log(`# usagedb ${argv.join(' ')} -> ${r.status} (${((Date.now() - t0) / 1000).toFixed(1)} s)` +
              `\n#   ${(r.stdout + r.stderr).trim().split('\n').join('\n#   ')}`);
  return r;
}

// ---- 1. The fixture: edge values, with the rows every reader must see.
const MAX = '99999999999999999999999999999999999999';
const MAY1 = 1777593600000;
const DIMS = { region: 'eu\n"q"\\/', agent: 'ünï\u0001code', z_key: '\t\u007f' };
const base = (id, extra) => ({
  event_id: id, account_id: 'acct-é', subscription_id: 'sub-é', product_id: 'ai_gateway',
  meter_id: 'tokens.input', model_id: 'claude-x', timestamp_ms: MAY1 + 3600000, quantity: 1,
  unit: 'token', source: 'fixture', dimensions: DIMS, ...extra,
});
const strip = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
const FIXTURE = [
  base('fx-max', { kind: 'Usage', quantity: MAX }),
  base('fx-min', { kind: 'Correction', quantity: `-${MAX}`,
                   correction_ref: { original_event_id: 'fx-max', reason: 'refund ✓' } }),
  base('fx-ret', { kind: 'Retraction', quantity: -1, correction_ref: { original_event_id: 'fx-max' },
                   subscription_id: undefined, model_id: undefined, dimensions: undefined }),
  { event_id: 'fx-zero', account_id: 'acct-z', product_id: 'p', meter_id: 'm',
    timestamp_ms: MAY1 - 1, quantity: 0, unit: 'u', source: 's' },       // 2026-04-30T23:59:59.999Z
  base('fx-june', { kind: 'usage', quantity: '18446744073709551616',
                    timestamp_ms: MAY1 + 31 * 86400000 }),                  // 2026-06-01T00:00:00Z
  base('fx-corr-pos', { kind: 'correction', quantity: '000007',
                        correction_ref: { original_event_id: 'nowhere', reason: '' } }),
  base('fx-big-neg', { kind: 'Correction', quantity: '-18446744073709551617',
                       correction_ref: { original_event_id: 'fx-max', reason: null } }),
].map(strip);
writeFileSync(W('fixture.jsonl'), FIXTURE.map((e) => JSON.stringify(e)).join('\n') + '\n');

// SPEC §1 canonical dimensions string, written independently of the C++ code: keys sorted by
// UTF-8 bytes; JSON.stringify escapes exactly \" \\ \b \f \n \r \t and other < 0x20 as \u00xx.
function canonicalDims(d) {
  if (!d) return '{}';
  const keys = Object.keys(d).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(d[k])}`).join(',')}}`;
}
const capital = (k) => (k ? k[0].toUpperCase() + k.slice(1).toLowerCase() : 'Usage');
const EXPECTED = new Map(FIXTURE.map((e) => [e.event_id, {
  event_id: e.event_id,
  kind: capital(e.kind),
  correction_original_event_id: e.correction_ref ? e.correction_ref.original_event_id : null,
  correction_reason: e.correction_ref ? (e.correction_ref.reason ?? '') : null,
  account_id: e.account_id,
  subscription_id: e.subscription_id ?? null,
  product_id: e.product_id,
  meter_id: e.meter_id,
  model_id: e.model_id ?? null,
  timestamp_ms: String(e.timestamp_ms),
  quantity: BigInt(e.quantity).toString(),
  unit: e.unit,
  source: e.source,
  dimensions_canonical: canonicalDims(e.dimensions),
}]));

const COLUMNS = [
  ['event_id', 'VARCHAR', 'Utf8', false],
  ['kind', 'VARCHAR', 'Utf8', false],
  ['correction_original_event_id', 'VARCHAR', 'Utf8', true],
  ['correction_reason', 'VARCHAR', 'Utf8', true],
  ['account_id', 'VARCHAR', 'Utf8', false],
  ['subscription_id', 'VARCHAR', 'Utf8', true],
  ['product_id', 'VARCHAR', 'Utf8', false],
  ['meter_id', 'VARCHAR', 'Utf8', false],
  ['model_id', 'VARCHAR', 'Utf8', true],
  ['timestamp_ms', 'BIGINT', 'Int64', false],
  ['quantity', 'DECIMAL(38,0)', 'Decimal[38e0]', false],
  ['unit', 'VARCHAR', 'Utf8', false],
  ['source', 'VARCHAR', 'Utf8', false],
  ['dimensions_canonical', 'VARCHAR', 'Utf8', false],
  ['ingested_at_ms', 'BIGINT', 'Int64', false],
];
const NAMES = COLUMNS.map((c) => c[0]);
const INTEGER_COLUMNS = new Set(['timestamp_ms', 'quantity', 'ingested_at_ms']);

// ---- 2. Build the database and the exports with the CLI.
const gen = run(args.gen, ['--events', String(EVENTS), '--seed', '7', '--out', W('gen.jsonl')]);
assert.equal(gen.status, 0, gen.stderr);
let r = usagedb(['ingest', W('fixture.jsonl')]);
assert.equal(r.status, 0);
assert.match(r.stdout, new RegExp(`ingested ${FIXTURE.length} events: ${FIXTURE.length} accepted`));
r = usagedb(['ingest', W('gen.jsonl')]);
assert.equal(r.status, 0);
assert.match(r.stdout, / 0 conflicts, 0 rejected/);

const single = W('single.parquet');
const tree = W('tree');
const filtered = W('filtered.parquet');
const small = W('small_groups.parquet');
const exportSingle = usagedb(['export-parquet', single]);
const exportTree = usagedb(['export-parquet', tree, '--partition-by', 'date']);
const exportFiltered = usagedb(['export-parquet', filtered, '--from', '2026-05-10',
                                '--to', '2026-05-12T12:00:00Z', '--account', 'acct_000000']);
const exportSmall = usagedb(['export-parquet', small],
                            { env: { USAGEDB_EXPORT_ROW_GROUP_ROWS: '2000' } });
const snapSeq = Number(/as of commit sequence (\d+)/.exec(exportSingle.stdout)?.[1]);
// The raw audit API's view of the same snapshot.
const dumpRun = run(args.dump, ['--db-root', DB, '--as-of', String(snapSeq)],
                    { stdoutFile: W('dump.jsonl') });
// Later ingests, then an export as of the first one's sequence.
writeFileSync(W('late.jsonl'), ['late-1', 'late-2'].map((id) => JSON.stringify(
  { event_id: id, account_id: 'acct-late', product_id: 'p', meter_id: 'm',
    timestamp_ms: MAY1 + 5, quantity: 3, unit: 'u', source: 's' })).join('\n') + '\n');
usagedb(['ingest', W('late.jsonl')]);
const asOf = W('as_of.parquet');
const exportAsOf = usagedb(['export-parquet', asOf, '--as-of', String(snapSeq)]);
const exportEmpty = usagedb(['export-parquet', W('empty.parquet'), '--account', 'nobody']);
const exportEmptyTree = usagedb(['export-parquet', W('empty_tree'), '--account', 'nobody',
                                 '--partition-by', 'date']);

await check('CLI: exit codes, one-line summaries', async () => {
  for (const x of [exportSingle, exportTree, exportFiltered, exportSmall, exportAsOf, exportEmpty,
                   exportEmptyTree]) {
    assert.equal(x.status, 0, x.stderr);
    assert.match(x.stdout, /^exported \d+ events.* from \d+ segments to .*: \d+ bytes in \d+ files?, [\d.]+ s/);
    assert.equal(x.stdout.trim().split('\n').length, 1);
    assert.equal(x.stderr, '', 'no progress line when stderr is not a terminal');
  }
  assert.ok(snapSeq > 0);
  assert.match(exportEmpty.stdout, /exported 0 events \(empty: .*zero-row file\)/);
  assert.match(exportEmptyTree.stdout, /exported 0 events \(empty: .*empty directory\) .* in 0 files/);
  assert.equal(dumpRun.status, 0, dumpRun.stderr);
  // OUT exists -> 1; usage errors -> 2; nothing written by failed runs.
  assert.equal(usagedb(['export-parquet', single]).status, 1);
  assert.equal(usagedb(['export-parquet', W('x.parquet'), '--as-of', '1', '--as-of-ms', '5']).status, 2);
  assert.equal(usagedb(['export-parquet', W('x.parquet'), '--from', 'yesterday']).status, 2);
  assert.equal(usagedb(['export-parquet', W('x.parquet'), '--partition-by', 'month']).status, 2);
  assert.equal(usagedb(['export-parquet', W('x.parquet'), '--as-of-ms', '2999-01-01']).status, 2);
  assert.equal(usagedb(['export-parquet', W('x.parquet'), '--bogus']).status, 2);
  assert.equal(existsSync(W('x.parquet')), false);
  assert.deepEqual(readdirSync(work).filter((n) => n.includes('.tmp-')), []);
});

const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
await conn.run(`SET memory_limit = '2GB'`);
await conn.run(`SET temp_directory = '${W('duckdb_tmp')}'`);
const query = async (sql) => (await conn.runAndReadAll(sql)).getRowObjectsJS();
const lit = (s) => `'${s.replaceAll("'", "''")}'`;
const asText = (alias = '') => NAMES.map((c) => (INTEGER_COLUMNS.has(c)
  ? `${alias}${c}::VARCHAR AS ${c}` : `${alias}${c}`)).join(', ');

// The dump as a table, every column text (integers stay exact).
await conn.run(`CREATE TABLE d AS SELECT * FROM read_json(${lit(W('dump.jsonl'))},
    format = 'newline_delimited',
    columns = {${NAMES.map((c) => `${c}: 'VARCHAR'`).join(', ')}})`);
const [{ dumpRows }] = await query('SELECT count(*)::INTEGER AS dumpRows FROM d');
console.log(`# dump: ${dumpRows} raw events as of sequence ${snapSeq}`);

// Every row and column of `src` (a read_parquet(...) expression) equals the dump rows
// selected by `where`: a full outer join on event_id, no row missing on either side.
async function sameAsDump(src, where = 'true') {
  const diff = NAMES.slice(1).map((c) => `dd.${c} IS DISTINCT FROM p.${c}`).join(' OR ');
  const rows = await query(`WITH p AS (SELECT ${asText()} FROM ${src}),
      dd AS (SELECT * FROM d WHERE ${where})
      SELECT coalesce(dd.event_id, p.event_id) AS id, dd.event_id IS NULL AS only_in_parquet,
             p.event_id IS NULL AS only_in_dump
      FROM dd FULL OUTER JOIN p ON dd.event_id = p.event_id
      WHERE dd.event_id IS NULL OR p.event_id IS NULL OR ${diff} LIMIT 5`);
  assert.deepEqual(rows, [], 'rows differ from the raw audit API');
  const [{ a, b }] = await query(`SELECT (SELECT count(*) FROM ${src})::INTEGER AS a,
      (SELECT count(*) FROM d WHERE ${where})::INTEGER AS b`);
  assert.equal(a, b);
  assert.ok(a > 0 || where !== 'true');
  return a;
}
const rp = (f, extra = '') => `read_parquet(${lit(f)}${extra})`;

await check('single file: DESCRIBE names and types, parquet_schema repetition', async () => {
  const rows = await query(`DESCRIBE SELECT * FROM ${rp(single)}`);
  assert.deepEqual(rows.map((x) => [x.column_name, x.column_type]), COLUMNS.map((c) => [c[0], c[1]]));
  const schema = await query(`SELECT name, repetition_type FROM parquet_schema(${lit(single)})`);
  assert.deepEqual(schema.slice(1).map((x) => [x.name, x.repetition_type]),
                   COLUMNS.map((c) => [c[0], c[3] ? 'OPTIONAL' : 'REQUIRED']));
});

await check(`single file: all ${EVENTS}+ rows equal the raw audit API row by row (DuckDB)`, async () => {
  const n = await sameAsDump(rp(single));
  assert.equal(n, dumpRows);
  assert.ok(n >= EVENTS * 0.98 && n <= EVENTS + FIXTURE.length, `${n} rows`);
});

await check('single file: the fixture rows, every column exact (±(10^38−1), nulls, canonical dimensions)', async () => {
  const rows = await query(`SELECT ${asText()} FROM ${rp(single)} WHERE event_id LIKE 'fx-%'`);
  assert.equal(rows.length, EXPECTED.size);
  for (const row of rows) {
    const want = EXPECTED.get(row.event_id);
    for (const c of NAMES) {
      if (c === 'ingested_at_ms') {
        assert.ok(BigInt(row[c]) > 1700000000000n, row[c]);
        continue;
      }
      assert.equal(row[c], want[c], `${row.event_id}.${c}`);
    }
  }
  const [{ s }] = await query(`SELECT sum(quantity)::VARCHAR AS s FROM ${rp(single)}
                               WHERE event_id IN ('fx-max', 'fx-min')`);
  assert.equal(s, '0');
});

await check('single file: zstd on every column chunk, only min_value/max_value statistics', async () => {
  const rows = await query(`SELECT DISTINCT compression, stats_min IS NULL AND stats_max IS NULL AS
      no_deprecated FROM parquet_metadata(${lit(single)})`);
  assert.deepEqual(rows, [{ compression: 'ZSTD', no_deprecated: true }]);
  for (const f of [small, filtered, asOf, W('empty.parquet')]) {
    const c = await query(`SELECT DISTINCT compression FROM parquet_metadata(${lit(f)})`);
    assert.ok(c.every((x) => x.compression === 'ZSTD'), f);
  }
});

await check('small row groups: exact statistics per row group (signed quantity), both signs present', async () => {
  const groups = await query(`SELECT row_group_id::INTEGER AS g, row_group_num_rows::INTEGER AS n,
      stats_min_value AS lo, stats_max_value AS hi, stats_null_count::INTEGER AS nulls
      FROM parquet_metadata(${lit(small)}) WHERE path_in_schema = 'quantity' ORDER BY g`);
  assert.ok(groups.length >= 10, `${groups.length} row groups`);
  // What DuckDB reads from each group, vs what the footer says.
  const actual = await query(`SELECT (file_row_number // 2000)::INTEGER AS g,
      min(quantity)::VARCHAR AS lo, max(quantity)::VARCHAR AS hi, count(*)::INTEGER AS n
      FROM ${rp(small, ', file_row_number = true')} GROUP BY ALL ORDER BY g`);
  assert.equal(actual.length, groups.length);
  for (let i = 0; i < groups.length; i++) {
    assert.equal(groups[i].n, actual[i].n, `group ${i}`);
    assert.equal(BigInt(groups[i].lo), BigInt(actual[i].lo), `group ${i} min`);
    assert.equal(BigInt(groups[i].hi), BigInt(actual[i].hi), `group ${i} max`);
    assert.equal(groups[i].nulls, 0);
  }
  assert.ok(groups.some((g) => BigInt(g.lo) >= 0n), 'a row group without negative quantities');
  assert.ok(groups.some((g) => BigInt(g.lo) < 0n), 'a row group with negative quantities');
  await sameAsDump(rp(small));
});

const PREDICATES = [
  'quantity < 0', 'quantity <= -1', 'quantity = 0', 'quantity > 0',
  `quantity = ${MAX}`, `quantity = -${MAX}`, 'quantity < -18446744073709551616',
  'quantity > 18446744073709551615', 'quantity BETWEEN -5 AND -1',
  "account_id > 'acct_9'", "account_id = 'acct-é'", 'model_id IS NULL',
  "correction_reason = ''", 'subscription_id IS NULL',
];
await check('predicates around negative quantities (pruned by statistics) match the raw data', async () => {
  for (const f of [small, single]) {
    for (const pred of PREDICATES) {
      const dpred = pred.replaceAll('quantity', 'quantity::HUGEINT');
      const [{ a, b }] = await query(`SELECT
          (SELECT count(*) FROM ${rp(f)} WHERE ${pred})::INTEGER AS a,
          (SELECT count(*) FROM d WHERE ${dpred})::INTEGER AS b`);
      assert.equal(a, b, `${path.basename(f)}: WHERE ${pred}`);
    }
  }
  const [{ neg }] = await query(`SELECT count(*)::INTEGER AS neg FROM ${rp(small)} WHERE quantity < 0`);
  assert.ok(neg >= 4, `${neg} negative rows`);
});

await check('partitioned tree: layout, hive_partitioning dates and counts, every row', async () => {
  const dirs = readdirSync(tree).sort();
  assert.ok(dirs.length >= 32, dirs.join(' '));
  for (const dir of dirs) {
    assert.match(dir, /^date=\d{4}-\d{2}-\d{2}$/);
    const parts = readdirSync(path.join(tree, dir));
    assert.ok(parts.length >= 1 && parts.every((p) => /^part-\d{5}\.parquet$/.test(p)), parts.join(' '));
  }
  assert.ok(dirs.includes('date=2026-04-30') && dirs.includes('date=2026-06-01'));
  const src = `read_parquet(${lit(`${tree}/**/*.parquet`)}, hive_partitioning = true)`;
  const perDate = await query(`SELECT date::VARCHAR AS date, count(*)::INTEGER AS n FROM ${src}
                               GROUP BY ALL ORDER BY date`);
  const want = await query(`SELECT strftime(make_timestamp(timestamp_ms::BIGINT * 1000),
      '%Y-%m-%d') AS date, count(*)::INTEGER AS n FROM d GROUP BY ALL ORDER BY date`);
  assert.deepEqual(perDate, want);
  assert.deepEqual(perDate.map((x) => `date=${x.date}`), dirs);
  const [{ bad }] = await query(`SELECT count(*)::INTEGER AS bad FROM ${src} WHERE date::VARCHAR
      <> strftime(make_timestamp(timestamp_ms * 1000), '%Y-%m-%d')`);
  assert.equal(bad, 0);
  await sameAsDump(src);
  const [{ x }] = await query(`SELECT quantity::VARCHAR AS x FROM ${src}
      WHERE date = DATE '2026-06-01' AND event_id = 'fx-june'`);
  assert.equal(x, '18446744073709551616');
});

await check('filtered export (--from/--to/--account) equals the raw rows it selects', async () => {
  const n = await sameAsDump(rp(filtered), `account_id = 'acct_000000'
      AND timestamp_ms::BIGINT >= 1778371200000 AND timestamp_ms::BIGINT < 1778587200000`);
  assert.ok(n > 0);
});

await check('--as-of export: the earlier snapshot, no later event', async () => {
  await sameAsDump(rp(asOf));
  const [{ late }] = await query(`SELECT count(*)::INTEGER AS late FROM ${rp(asOf)}
                                  WHERE event_id LIKE 'late-%'`);
  assert.equal(late, 0);
});

await check('empty exports: a zero-row file with the schema, an empty directory', async () => {
  const f = W('empty.parquet');
  const [{ n }] = await query(`SELECT count(*)::INTEGER AS n FROM ${rp(f)}`);
  assert.equal(n, 0);
  const schema = await query(`SELECT name FROM parquet_schema(${lit(f)})`);
  assert.equal(schema.length, 16);
  const table = tableFromIPC(parquetWasm.readParquet(new Uint8Array(readFileSync(f))).intoIPCStream());
  assert.equal(table.numRows, 0);
  assert.deepEqual(table.schema.fields.map((x) => [x.name, String(x.type), x.nullable]),
                   COLUMNS.map((c) => [c[0], c[2], c[3]]));
  assert.deepEqual(readdirSync(W('empty_tree')), []);
});

await check('parquet-wasm (arrow-rs): schema and every value of every row of the single file', async () => {
  const table = tableFromIPC(parquetWasm.readParquet(new Uint8Array(readFileSync(single))).intoIPCStream());
  assert.equal(table.numRows, dumpRows);
  assert.deepEqual(table.schema.fields.map((x) => [x.name, String(x.type), x.nullable]),
                   COLUMNS.map((c) => [c[0], c[2], c[3]]));
  const vecs = NAMES.map((c) => table.getChild(c));
  // The dump's rows in the file's order (joined on event_id by DuckDB).
  const result = await conn.stream(`SELECT ${NAMES.map((c) => `d.${c}`).join(', ')}
      FROM ${rp(single, ', file_row_number = true')} p JOIN d USING (event_id)
      ORDER BY p.file_row_number`);
  let i = 0;
  for await (const rows of result.yieldRowsJs()) {
    for (const row of rows) {
      for (let c = 0; c < NAMES.length; c++) {
        const v = vecs[c].get(i);
        const got = v === null ? null : INTEGER_COLUMNS.has(NAMES[c]) ? String(v) : v;
        if (got !== row[c]) {
          assert.fail(`row ${i} (${row[0]}) column ${NAMES[c]}: ${JSON.stringify(got)} != ` +
                      `${JSON.stringify(row[c])}`);
        }
      }
      i++;
    }
  }
  assert.equal(i, dumpRows);
});

console.log(`${checks - failures}/${checks} checks passed`);
process.exit(failures === 0 ? 0 : 1);
