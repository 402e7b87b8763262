import assert from 'node:assert/strict';
import { KeptValueTable } from '../../controller/kept-values';

describe("the hub's table of kept values", () => {
  let freed: [number, string[]][];
  let ended: Map<string, number | undefined>;
  let table: KeptValueTable;
  beforeEach(() => {
    freed = [];
    ended = new Map();
    table = new KeptValueTable(
      (engineId, msgIds) => freed.push([engineId, msgIds]),
      (msgId) => (ended.has(msgId) ? { keptOn: ended.get(msgId) } : undefined),
    );
  });

  it('frees a value its client released once it is kept', () => {
    table.release(['a']);
    assert.deepEqual(freed, []);
    table.ended('a', 2);
    assert.deepEqual(freed, [[2, ['a']]]);
  });

  it('keeps a released value until the tasks taking it have ended', () => {
    table.ended('a', 1);
    table.need(['a']);
    table.need(['a']);
    table.release(['a']);
    table.needed(['a']);
    assert.deepEqual(freed, []);
    table.needed(['a']);
    assert.deepEqual(freed, [[1, ['a']]]);
  });

  it('learns where a value that ended before anyone asked is kept, from its record', () => {
    ended.set('a', 3);
    table.need(['a']);
    table.release(['a']);
    table.needed(['a']);
    assert.deepEqual(freed, [[3, ['a']]]);
  });

  it('frees nothing for a task whose value was not kept, nor twice', () => {
    table.need(['small']);
    table.ended('small', undefined);
    table.release(['small']);
    table.needed(['small']);
    table.ended('b', 1);
    table.release(['b']);
    table.release(['b']);
    assert.deepEqual(freed, [[1, ['b']]]);
  });

  it('names the lost values still needed when their engine goes, and frees a remade one', () => {
    table.ended('needed', 1);
    table.need(['needed']);
    table.ended('idle', 1);
    assert.deepEqual(table.engineLost(1), ['needed']);
    table.rerun('needed');
    table.release(['needed']);
    table.ended('needed', 2);
    table.needed(['needed']);
    assert.deepEqual(freed, [[2, ['needed']]]);
  });
});
