import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheKey, ResultCache } from '../../client/result-cache';

describe('result cache entries', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tsparallel-cache-unit-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Collects the warnings `run` causes, which node emits on the next tick. */
  async function warningsOf(run: () => void): Promise<Error[]> {
    const warnings: Error[] = [];
    const listen = (w: Error): number => warnings.push(w);
    process.on('warning', listen);
    try {
      run();
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', listen);
    }
    return warnings;
  }

  it('keys differ wherever the source ends and the arguments begin', () => {
    const a = cacheKey('ab', [Buffer.from('c')]);
    assert.notEqual(a, cacheKey('a', [Buffer.from('bc')]));
    assert.notEqual(a, cacheKey('ab', [Buffer.from('c'), Buffer.alloc(0)]));
    assert.equal(a, cacheKey('ab', [Buffer.from('c')]));
    assert.match(a, /^[0-9a-f]{64}$/);
  });

  it('evicts the least recently used entry though all were written and hit within one clock tick', () => {
    const cache = new ResultCache(dir);
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((k) => cacheKey(k, []));
    const frames = [Buffer.alloc(1000)];
    // Room for three entries of a little over 1,000 bytes.
    const maxBytes = 3500;
    for (let round = 0; round < 20; round++) {
      cache.clear();
      for (const key of [a, b, c]) cache.put(key, frames, maxBytes);
      assert.ok(cache.get(a), 'a hit: b is now the least recently used');
      cache.put(d, frames, maxBytes);
      assert.equal(cache.get(b), undefined, `round ${round}: b was kept`);
      for (const key of [a, c, d]) assert.ok(cache.get(key), `round ${round}: an entry went`);
    }
  });

  it('stores frames in a two-character subdirectory and gives them back whole', () => {
    const cache = new ResultCache(dir);
    const key = cacheKey('f', []);
    const frames = [Buffer.from('body'), Buffer.alloc(0), Buffer.alloc(100_000, 7)];
    cache.put(key, frames);
    assert.deepEqual(readdirSync(join(dir, key.slice(0, 2))), [key]);
    assert.deepEqual(cache.get(key), frames);
    assert.equal(cache.get(cacheKey('g', [])), undefined);
    assert.deepEqual(
      { ...cache.info(), bytes: 0 },
      { entries: 1, bytes: 0, hits: 1, misses: 1, dir },
    );
  });

  it('a flipped byte anywhere is a miss with a warning, and the entry is removed', async () => {
    const cache = new ResultCache(dir);
    const key = cacheKey('f', [Buffer.from('x')]);
    cache.put(key, [Buffer.from('a value')]);
    const file = join(dir, key.slice(0, 2), key);
    const whole = readFileSync(file);
    for (const at of [0, 10, whole.length - 1]) {
      const bad = Buffer.from(whole);
      bad[at] ^= 1;
      writeFileSync(file, bad);
      const warnings = await warningsOf(() => assert.equal(cache.get(key), undefined));
      assert.equal(warnings.length, 1);
      assert.match(warnings[0].message, /corrupt or truncated/);
      assert.deepEqual(readdirSync(join(dir, key.slice(0, 2))), []);
    }
  });
});
