import assert from 'node:assert/strict';
import { RecordBatch, Table, tableFromArrays } from 'apache-arrow';
import { RemoteError } from '../../protocol/errors';
import { useCluster } from './fixture';

/** Rows as JSON (bigints marked), so two tables compare by content. */
const rows = (t: Table): string =>
  JSON.stringify(t.toArray(), (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));

const sample = (n: number, from = 0): Table =>
  tableFromArrays({
    id: Int32Array.from({ length: n }, (_, i) => from + i),
    x: Float64Array.from({ length: n }, (_, i) => (from + i) / 8),
    big: BigInt64Array.from({ length: n }, (_, i) => BigInt(from + i) * 3n),
    name: Array.from({ length: n }, (_, i) => ((from + i) % 3 === 0 ? null : `n${(from + i) % 5}`)),
  });

describe('Arrow tables on a real cluster of 3 engines', function () {
  this.timeout(60_000);
  const t = useCluster(3);

  before(async () => {
    // Engine code imports apache-arrow as a user would: the values that arrive must be its Table.
    await t.rc
      .directView()
      .execute(
        "import { Table, RecordBatch } from 'apache-arrow';\n" +
          'function kinds(...xs: unknown[]) { return xs.map((x) => ' +
          "x instanceof Table ? 'Table' : x instanceof RecordBatch ? 'RecordBatch' : typeof x); }",
      );
  });

  it('travels as apply arguments and results, as a Table of the engine namespace', async () => {
    const table = sample(1000);
    const lv = t.rc.loadBalancedView();
    const seen = await lv.apply(
      (tab: Table, batch: RecordBatch) => [...kinds(tab, batch), tab.numRows, batch.numRows],
      table,
      table.batches[0],
    );
    assert.deepEqual(seen, ['Table', 'RecordBatch', 1000, 1000]);
    const doubled = await lv.apply((tab: Table) => tab.slice(10, 20), table);
    assert.ok(doubled instanceof Table);
    assert.equal(rows(doubled), rows(table.slice(10, 20)));
  });

  it('push and pull tables, alone or inside other values', async () => {
    const dv = t.rc.directView();
    const table = sample(300);
    await dv.push({ tab: table, holder: { tables: [table], n: 1 } });
    const [[tab, holder]] = await t.rc
      .directView(1)
      .pull<[Table, { tables: Table[] }]>(['tab', 'holder']);
    assert.equal(rows(tab), rows(table));
    assert.equal(rows(holder.tables[0]), rows(table));
    const seen = await dv.apply(() => kinds(tab, holder.tables[0]));
    assert.deepEqual(seen, [
      ['Table', 'Table'],
      ['Table', 'Table'],
      ['Table', 'Table'],
    ]);
  });

  it('scatter splits a 1-million-row table by rows; gather joins it back equal', async () => {
    const n = 1_000_000;
    const table = tableFromArrays({
      i: Int32Array.from({ length: n }, (_, k) => k),
      x: Float64Array.from({ length: n }, (_, k) => Math.sqrt(k)),
    });
    const dv = t.rc.directView();
    await dv.scatter('part', table);
    // The partition rule of arrays: sizes differ by at most one, longer parts first.
    const parts = await dv.apply(() => [...kinds(part), part.numRows, part.get(0)?.i]);
    assert.deepEqual(parts, [
      ['Table', 333_334, 0],
      ['Table', 333_333, 333_334],
      ['Table', 333_333, 666_667],
    ]);
    const back = await dv.gather<Table>('part');
    assert.ok(back instanceof Table);
    assert.equal(back.numRows, n);
    assert.deepEqual(back.getChild('i')!.toArray(), table.getChild('i')!.toArray());
    assert.deepEqual(back.getChild('x')!.toArray(), table.getChild('x')!.toArray());
  });

  describe('mapBatches', () => {
    it('joins uneven batches that finish out of order in row order, counting progress', async () => {
      const table = sample(1003);
      const lv = t.rc.loadBalancedView();
      // The first batch is slow, so later ones (on other engines) finish before it.
      const ar = lv.mapBatches(
        table,
        async (batch: Table) => {
          if (batch.get(0)!.id === 0) await new Promise((r) => setTimeout(r, 1000));
          return batch.select(['id', 'name']);
        },
        { rows: 100 },
      );
      assert.equal(ar.length, 11);
      const out = await ar;
      assert.equal(ar.progress, 11);
      assert.ok(out instanceof Table);
      assert.equal(rows(out), rows(table.select(['id', 'name'])));
      const finished = ar.metadata.map((m) => m.completed!.getTime());
      assert.ok(
        finished.some((f) => f < finished[0]),
        'a later batch finished before the first',
      );
    });

    it('runs fn once on an empty table, giving its columns', async () => {
      const empty = sample(5).slice(0, 0);
      const out = await t.rc
        .loadBalancedView()
        .mapBatches(empty, (b: Table) => b.select(['x']), { rows: 10 });
      assert.equal(out.numRows, 0);
      assert.deepEqual(
        out.schema.fields.map((f) => f.name),
        ['x'],
      );
    });

    it('says which batch returned something other than a Table', async () => {
      const lv = t.rc.loadBalancedView();
      await assert.rejects(
        lv.mapBatches(sample(30), (b: Table) => b.numRows as unknown as Table, { rows: 10 }).get(),
        (e: unknown) => {
          assert.ok(e instanceof TypeError);
          assert.match(e.message, /fn returned a number for batch 0 \(rows 0 to 10\)/);
          assert.match(e.message, /must return an Arrow Table/);
          return true;
        },
      );
      await assert.rejects(
        lv.mapBatches(sample(30), (b: Table) => ({ n: b.numRows }) as unknown as Table).get(),
        /fn returned an object for batch 0 .* must return an Arrow Table/,
      );
      assert.throws(
        () => lv.mapBatches([1, 2] as unknown as Table, (b: Table) => b),
        /mapBatches needs an Arrow Table, got an array/,
      );
      await assert.rejects(
        lv
          .mapBatches(
            sample(3),
            () => {
              throw new Error('bad batch');
            },
            { rows: 10 },
          )
          .get(),
        (e: unknown) => e instanceof RemoteError && /bad batch/.test(e.message),
      );
    });
  });
});

declare global {
  // Defined on the engines by the tests above.
  function kinds(...xs: unknown[]): string[];
  var part: Table;
  var tab: Table;
  var holder: { tables: Table[] };
}
