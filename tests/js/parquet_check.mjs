#!/usr/bin/env node
// Checks usageDb's Parquet files with independent readers.
//
//   node parquet_check.mjs DIR
//
// DIR holds files written by usagedb_parquet_sample (see src/export/parquet_js_fixture.cmake):
//   sample.parquet  default writer options (one row group, dictionary pages)
//   multi.parquet   several row groups, small pages, dictionaries overflowing into PLAIN
//   empty.parquet   zero rows
// each with NAME.jsonl: the values every reader must see, one JSON object per row in file order
// (64- and 128-bit integers as decimal strings, null for null).
//
// DuckDB checks the schema (DESCRIBE, parquet_schema), the metadata (parquet_metadata: ZSTD,
// min_value/max_value exact per row group, signed for quantity; the deprecated min/max absent),
// every value of every row, and predicates that row-group pruning could get wrong.
// parquet-wasm (arrow-rs) checks the Arrow schema and every value again; hyparquet the strings.
// Exit 0 = pass, 1 = failure, 77 = skipped (node_modules missing: run scripts/setup.sh).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const here = path.dirname(fileURLToPath(import.meta.url));
if (!existsSync(path.join(here, 'node_modules', '@duckdb', 'node-api'))) {
  console.log('SKIP: tests/js/node_modules is missing; run scripts/setup.sh ' +
              '(it runs `npm install` in tests/js)');
  process.exit(77);
}
const dir = process.argv[2];
if (!dir) {
  console.error('usage: node parquet_check.mjs DIR');
  process.exit(2);
}

const { DuckDBInstance } = await import('@duckdb/node-api');
const parquetWasm = await import('parquet-wasm');
const { tableFromIPC } = await import('apache-arrow');
const { parquetReadObjects, parquetMetadata } = await import('hyparquet');
const { compressors } = await import('hyparquet-compressors');

const COLUMNS = [
  // name, DuckDB type, Arrow type, optional, Parquet physical type
  ['event_id', 'VARCHAR', 'Utf8', false, 'BYTE_ARRAY'],
  ['kind', 'VARCHAR', 'Utf8', false, 'BYTE_ARRAY'],
  ['correction_original_event_id', 'VARCHAR', 'Utf8', true, 'BYTE_ARRAY'],
  ['correction_reason', 'VARCHAR', 'Utf8', true, 'BYTE_ARRAY'],
  ['account_id', 'VARCHAR', 'Utf8', false, 'BYTE_ARRAY'],
  ['subscription_id', 'VARCHAR', 'Utf8', true, 'BYTE_ARRAY'],
  ['product_id', 'VARCHAR', 'Utf8', false, 'BYTE_ARRAY'],
  ['meter_id', 'VARCHAR', 'Utf8', false, 'BYTE_ARRAY'],
  ['model_id', 'VARCHAR', 'Utf8', true, 'BYTE_ARRAY'],
  ['timestamp_ms', 'BIGINT', 'Int64', false, 'INT64'],
  ['quantity', 'DECIMAL(38,0)', 'Decimal[38e0]', false, 'FIXED_LEN_BYTE_ARRAY'],
  ['unit', 'VARCHAR', 'Utf8', false, 'BYTE_ARRAY'],
  ['source', 'VARCHAR', 'Utf8', false, 'BYTE_ARRAY'],
  ['dimensions_canonical', 'VARCHAR', 'Utf8', false, 'BYTE_ARRAY'],
  ['ingested_at_ms', 'BIGINT', 'Int64', false, 'INT64'],
];
const NAMES = COLUMNS.map((c) => c[0]);
const INTEGER_COLUMNS = new Set(['timestamp_ms', 'quantity', 'ingested_at_ms']);
const DICTIONARY_COLUMNS = ['kind', 'account_id', 'product_id', 'meter_id', 'unit', 'source'];

let failures = 0;
let checks = 0;
async function check(name, fn) {
  checks++;
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}\n     ${String(e.message).split('\n').slice(0, 12).join('\n     ')}`);
  }
}

const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
async function query(sql) {
  const reader = await conn.runAndReadAll(sql);
  return reader.getRowObjectsJS();
}
const sqlString = (s) => `'${s.replaceAll("'", "''")}'`;

// Unsigned byte-wise comparison of UTF-8 strings (the Parquet order for STRING).
const cmpBytes = (a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
const cmpBig = (a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0);

function loadExpected(name) {
  const text = readFileSync(path.join(dir, `${name}.jsonl`), 'utf8');
  return text.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

async function checkFile(name, { minRowGroups = 1, dictionaryPages = true } = {}) {
  const file = path.join(dir, `${name}.parquet`);
  const src = `read_parquet(${sqlString(file)})`;
  const expected = loadExpected(name);
  console.log(`# ${name}.parquet: ${expected.length} expected rows`);

  await check(`${name}: DESCRIBE names and types`, async () => {
    const rows = await query(`DESCRIBE SELECT * FROM ${src}`);
    assert.deepEqual(rows.map((r) => [r.column_name, r.column_type]),
                     COLUMNS.map((c) => [c[0], c[1]]));
  });

  await check(`${name}: parquet_schema repetition, physical and logical types`, async () => {
    const rows = await query(`SELECT name, type, type_length, repetition_type, num_children,
        converted_type, scale, precision, logical_type FROM parquet_schema(${sqlString(file)})`);
    assert.equal(rows.length, 16);
    assert.equal(String(rows[0].num_children), '15');
    for (let i = 0; i < 15; i++) {
      const r = rows[i + 1];
      const [col, , , optional, physical] = COLUMNS[i];
      assert.equal(r.name, col);
      assert.equal(r.type, physical, col);
      assert.equal(r.repetition_type, optional ? 'OPTIONAL' : 'REQUIRED', col);
      if (physical === 'BYTE_ARRAY') {
        assert.equal(r.converted_type, 'UTF8', col);
        assert.match(String(r.logical_type), /String/, col);
      } else if (col === 'quantity') {
        assert.equal(String(r.type_length), '16');
        assert.equal(r.converted_type, 'DECIMAL');
        assert.equal(String(r.precision), '38');
        assert.equal(String(r.scale), '0');
        assert.match(String(r.logical_type), /Decimal.*scale=0.*precision=38/);
      } else {
        assert.equal(r.converted_type, null, col);
        assert.equal(r.logical_type, null, col);
      }
    }
  });

  await check(`${name}: parquet_file_metadata`, async () => {
    const [m] = await query(`SELECT * FROM parquet_file_metadata(${sqlString(file)})`);
    assert.equal(m.num_rows, BigInt(expected.length));
    assert.match(m.created_by, /^usagedb version /);
    assert.equal(m.format_version, 1n);
  });

  // parquet_metadata: one row per (row group, column).
  const meta = await query(`SELECT * FROM parquet_metadata(${sqlString(file)})
                            ORDER BY row_group_id, column_id`);
  const groups = [];
  for (const r of meta) {
    const g = Number(r.row_group_id);
    groups[g] ??= { rows: Number(r.row_group_num_rows), cols: [] };
    groups[g].cols[Number(r.column_id)] = r;
  }

  await check(`${name}: row groups cover every row (${groups.length} groups)`, async () => {
    assert.ok(groups.length >= minRowGroups, `expected at least ${minRowGroups} row groups`);
    assert.equal(groups.reduce((n, g) => n + g.rows, 0), expected.length);
    for (const g of groups) assert.equal(g.cols.length, 15);
  });

  await check(`${name}: ZSTD everywhere, only min_value/max_value, exact per row group`, async () => {
    let first = 0;
    for (const [gi, g] of groups.entries()) {
      const rows = expected.slice(first, first + g.rows);
      first += g.rows;
      for (let c = 0; c < 15; c++) {
        const m = g.cols[c];
        const col = NAMES[c];
        const where = `group ${gi} column ${col}`;
        assert.equal(m.path_in_schema, col, where);
        assert.equal(m.compression, 'ZSTD', where);
        assert.equal(m.num_values, BigInt(g.rows), where);
        assert.equal(m.stats_min, null, `${where}: deprecated min written`);
        assert.equal(m.stats_max, null, `${where}: deprecated max written`);
        const values = rows.map((r) => r[col]).filter((v) => v !== null);
        assert.equal(m.stats_null_count, BigInt(g.rows - values.length), where);
        if (values.length === 0) {
          assert.equal(m.stats_min_value, null, where);
          assert.equal(m.stats_max_value, null, where);
          continue;
        }
        const cmp = INTEGER_COLUMNS.has(col) ? cmpBig : cmpBytes;
        const sorted = [...values].sort(cmp);
        const lo = sorted[0];
        const hi = sorted[sorted.length - 1];
        if (INTEGER_COLUMNS.has(col)) {
          assert.equal(BigInt(m.stats_min_value), BigInt(lo), `${where} min`);
          assert.equal(BigInt(m.stats_max_value), BigInt(hi), `${where} max`);
        } else {
          assert.equal(m.stats_min_value, lo, `${where} min`);
          assert.equal(m.stats_max_value, hi, `${where} max`);
        }
      }
    }
  });

  await check(`${name}: encodings (dictionary where it pays, PLAIN for ids and numbers)`, async () => {
    for (const g of groups) {
      for (const c of ['event_id', 'timestamp_ms', 'quantity', 'ingested_at_ms']) {
        assert.equal(g.cols[NAMES.indexOf(c)].encodings, 'PLAIN', c);
      }
      if (!dictionaryPages) continue;
      for (const c of DICTIONARY_COLUMNS) {
        const m = g.cols[NAMES.indexOf(c)];
        assert.match(m.encodings, /RLE_DICTIONARY/, c);
        assert.notEqual(m.dictionary_page_offset, null, c);
      }
    }
  });

  await check(`${name}: every value of every row round-trips exactly (DuckDB)`, async () => {
    const select = NAMES.map((c) => (INTEGER_COLUMNS.has(c) ? `${c}::VARCHAR AS ${c}` : c));
    const rows = await query(`SELECT ${select.join(', ')} FROM
        read_parquet(${sqlString(file)}, file_row_number = true) ORDER BY file_row_number`);
    assert.equal(rows.length, expected.length);
    for (let i = 0; i < rows.length; i++) {
      for (const c of NAMES) {
        if (rows[i][c] !== expected[i][c]) {
          assert.fail(`row ${i} (${expected[i].event_id}) column ${c}: ` +
                      `${JSON.stringify(rows[i][c])} != ${JSON.stringify(expected[i][c])}`);
        }
      }
    }
  });

  // Predicates whose answer row-group pruning would corrupt if statistics used the wrong order.
  const predicates = [
    ['quantity < 0', (r) => BigInt(r.quantity) < 0n],
    ['quantity <= -1', (r) => BigInt(r.quantity) <= -1n],
    ['quantity = 0', (r) => BigInt(r.quantity) === 0n],
    ['quantity > 0', (r) => BigInt(r.quantity) > 0n],
    ['quantity >= 99999999999999999999999999999999999999',
     (r) => BigInt(r.quantity) >= 99999999999999999999999999999999999999n],
    ['quantity < -18446744073709551616', (r) => BigInt(r.quantity) < -18446744073709551616n],
    ['account_id > \'acct-z\'', (r) => cmpBytes(r.account_id, 'acct-z') > 0],
    ['account_id = \'acct-é\'', (r) => r.account_id === 'acct-é'],
    ['model_id IS NULL', (r) => r.model_id === null],
    ['correction_reason = \'\'', (r) => r.correction_reason === ''],
    ['timestamp_ms < 1000', (r) => BigInt(r.timestamp_ms) < 1000n],
  ];
  for (const [pred, fn] of predicates) {
    await check(`${name}: WHERE ${pred} returns exactly the matching rows`, async () => {
      const rows = await query(`SELECT event_id FROM ${src} WHERE ${pred}`);
      const got = rows.map((r) => r.event_id).sort();
      const want = expected.filter(fn).map((r) => r.event_id).sort();
      assert.deepEqual(got, want);
    });
  }

  await check(`${name}: parquet-wasm (arrow-rs) schema and every value`, async () => {
    const bytes = new Uint8Array(readFileSync(file));
    const table = tableFromIPC(parquetWasm.readParquet(bytes).intoIPCStream());
    assert.equal(table.numRows, expected.length);
    assert.deepEqual(table.schema.fields.map((f) => [f.name, String(f.type), f.nullable]),
                     COLUMNS.map((c) => [c[0], c[2], c[3]]));
    for (const c of NAMES) {
      const vec = table.getChild(c);
      for (let i = 0; i < expected.length; i++) {
        const v = vec.get(i);
        const got = v === null ? null : INTEGER_COLUMNS.has(c) ? String(v) : v;
        if (got !== expected[i][c]) {
          assert.fail(`row ${i} column ${c}: ${JSON.stringify(got)} != ` +
                      `${JSON.stringify(expected[i][c])}`);
        }
      }
    }
  });

  await check(`${name}: hyparquet strings, 64-bit integers and row count`, async () => {
    const buf = readFileSync(file);
    const file_ = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    const md = parquetMetadata(file_);
    assert.equal(Number(md.num_rows), expected.length);
    const rows = expected.length === 0 ? [] : await parquetReadObjects({ file: file_, compressors });
    assert.equal(rows.length, expected.length);
    for (let i = 0; i < rows.length; i++) {
      for (const c of NAMES) {
        if (c === 'quantity') continue;  // hyparquet returns DECIMAL as a lossy float
        const v = rows[i][c];
        const got = v === null || v === undefined ? null : typeof v === 'bigint' ? String(v) : v;
        if (got !== expected[i][c]) {
          assert.fail(`row ${i} column ${c}: ${JSON.stringify(got)} != ` +
                      `${JSON.stringify(expected[i][c])}`);
        }
      }
    }
  });
}

await checkFile('sample');
await checkFile('multi', { minRowGroups: 3, dictionaryPages: false });

await check('multi: some row groups hold no negative quantity, some do (pruning matters)', async () => {
  const rows = await query(`SELECT stats_min_value FROM parquet_metadata(
      ${sqlString(path.join(dir, 'multi.parquet'))}) WHERE path_in_schema = 'quantity'`);
  const mins = rows.map((r) => BigInt(r.stats_min_value));
  assert.ok(mins.some((m) => m >= 0n), 'no row group without negatives');
  assert.ok(mins.some((m) => m < 0n), 'no row group with negatives');
});

await check('multi: dictionaries overflowed into PLAIN pages in the same chunk', async () => {
  const rows = await query(`SELECT encodings FROM parquet_metadata(
      ${sqlString(path.join(dir, 'multi.parquet'))}) WHERE path_in_schema = 'dimensions_canonical'`);
  assert.ok(rows.some((r) => /RLE_DICTIONARY/.test(r.encodings) && /PLAIN/.test(r.encodings)),
            JSON.stringify(rows));
});

await checkFile('empty', { minRowGroups: 0 });

await check('empty: zero rows, zero row groups, full schema', async () => {
  const file = sqlString(path.join(dir, 'empty.parquet'));
  const [{ n }] = await query(`SELECT count(*) AS n FROM read_parquet(${file})`);
  assert.equal(n, 0n);
  const meta = await query(`SELECT * FROM parquet_metadata(${file})`);
  assert.equal(meta.length, 0);
});

console.log(`${checks - failures}/${checks} checks passed`);
process.exit(failures === 0 ? 0 : 1);
