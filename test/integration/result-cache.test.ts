import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from '../../cluster/cluster';
import { Reference } from '../../client/reference';
import { RemoteError } from '../../protocol/errors';
import { FAST_HEARTBEAT, useCluster } from './fixture';

// Each counts its runs in the engine's namespace, so a test sees how often an engine ran it.
const slowSquare = (x: number): number => {
  const g = globalThis as { squareRuns?: number };
  g.squareRuns = (g.squareRuns ?? 0) + 1;
  return x * x;
};
const failing = (x: number): number => {
  const g = globalThis as { failRuns?: number };
  g.failRuns = (g.failRuns ?? 0) + 1;
  throw new Error(`no ${x}`);
};
const kilobytes = (n: number): Uint8Array => {
  const g = globalThis as { kbRuns?: number };
  g.kbRuns = (g.kbRuns ?? 0) + 1;
  return new Uint8Array(n * 1024).fill(n);
};

const described = (x: number): { x: number; square: number; pad: string } => ({
  x,
  square: x * x,
  pad: 'p'.repeat(x % 97),
});

/** A fresh cache directory for one test. */
// Under the fixture's TSPARALLEL_DIR, which is removed when the tests end.
const freshDir = (): string => mkdtempSync(join(process.env.TSPARALLEL_DIR!, 'cache-'));

/** Every entry file of the cache in `dir`. */
function entryFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((d) => /^[0-9a-f]{2}$/.test(d))
    .flatMap((d) => readdirSync(join(dir, d)).map((f) => join(dir, d, f)))
    .filter((f) => !f.split('/').pop()!.startsWith('.'));
}

describe('the result cache, on a real cluster of 2 engines', () => {
  const t = useCluster(2);

  /** How often the engines ran `name`'s function in all. */
  async function runs(name: 'squareRuns' | 'failRuns' | 'kbRuns'): Promise<number> {
    const counts = await t.rc.directView().pull<number>(name);
    return counts.reduce((a, b) => a + b, 0);
  }

  beforeEach(async () => {
    await t.rc.directView().push({ squareRuns: 0, failRuns: 0, kbRuns: 0 });
  });

  it('a miss runs and stores; the same call then comes from disk with no engine', async () => {
    const dir = freshDir();
    const cv = t.rc.loadBalancedView().withOptions({ cache: dir });
    const first = cv.apply(slowSquare, 7);
    assert.equal(first.cached, false);
    assert.equal(await first, 49);
    const second = cv.apply(slowSquare, 7);
    // Served before `apply` returned: a finished result, no round trip.
    assert.equal(second.cached, true);
    assert.equal(second.ready(), true);
    assert.equal(second.metadata[0].engineId, null);
    assert.equal(await second, 49);
    assert.equal(await runs('squareRuns'), 1);
    assert.deepEqual(await t.rc.cacheInfo(dir), {
      entries: 1,
      bytes: entryBytes(dir),
      hits: 1,
      misses: 1,
      dir,
    });
  });

  it('a different argument or a different source misses', async () => {
    const dir = freshDir();
    const cv = t.rc.loadBalancedView().withOptions({ cache: dir });
    await cv.apply(slowSquare, 3);
    assert.equal(cv.apply(slowSquare, 3).cached, true);
    const other = cv.apply(slowSquare, 4);
    assert.equal(other.cached, false);
    assert.equal(await other, 16);
    const sameTextElsewhere = cv.apply((x: number) => x * x, 3);
    assert.equal(sameTextElsewhere.cached, false);
    assert.equal(await sameTextElsewhere, 9);
    assert.equal(await runs('squareRuns'), 2);
  });

  it('failures are not cached: the call runs again and fails again', async () => {
    const dir = freshDir();
    const cv = t.rc.loadBalancedView().withOptions({ cache: dir });
    await assert.rejects(cv.apply(failing, 1).get(), (e: Error) => e instanceof RemoteError);
    const again = cv.apply(failing, 1);
    assert.equal(again.cached, false);
    await assert.rejects(again.get(), /no 1/);
    assert.equal(await runs('failRuns'), 2);
    assert.equal((await t.rc.cacheInfo(dir)).entries, 0);
  });

  it('map caches element by element: 4 of 5 cached runs 1, results in order', async () => {
    const dir = freshDir();
    const cv = t.rc.loadBalancedView().withOptions({ cache: dir });
    assert.deepEqual(await cv.map(slowSquare, [1, 2, 4, 5]), [1, 4, 16, 25]);
    assert.equal(await runs('squareRuns'), 4);
    const ar = cv.map(slowSquare, [1, 2, 3, 4, 5]);
    assert.equal(ar.cached, false);
    assert.deepEqual(await ar, [1, 4, 9, 16, 25]);
    assert.equal(await runs('squareRuns'), 5);
    const ordered: number[] = [];
    for await (const v of cv.withOptions({ chunkSize: 2 }).map(slowSquare, [5, 6, 3, 7, 1])) {
      ordered.push(v);
    }
    assert.deepEqual(ordered, [25, 36, 9, 49, 1]);
    assert.equal(await runs('squareRuns'), 7);
    const all = cv.map(slowSquare, Int32Array.from([1, 2, 3]));
    assert.equal(all.cached, true);
    assert.deepEqual(await all, [1, 4, 9]);
    // An element cached by map is the same call as apply with that argument.
    assert.equal(cv.apply(slowSquare, 6).cached, true);
    // Direct views cache per element too, over the engines they partition among.
    const dv = t.rc.directView().withOptions({ cache: dir });
    assert.deepEqual(await dv.map(slowSquare, [1, 8, 2, 9]), [1, 64, 4, 81]);
    assert.equal(await runs('squareRuns'), 9);
    assert.deepEqual(await dv.apply(slowSquare, 8), [64, 64]);
    assert.equal(await runs('squareRuns'), 9);
  });

  it('a task after or following a cached one runs at once', async () => {
    const dir = freshDir();
    const cv = t.rc.loadBalancedView().withOptions({ cache: dir });
    await cv.apply(slowSquare, 11);
    const cached = cv.apply(slowSquare, 11);
    assert.equal(cached.cached, true);
    const lv = t.rc.loadBalancedView();
    assert.equal(await lv.withOptions({ after: cached }).apply(() => 'after'), 'after');
    assert.equal(await lv.withOptions({ follow: cached.msgIds }).apply(() => 'follow'), 'follow');
    await assert.rejects(t.rc.result(cached.msgIds[0]), /served from the result cache/);
  });

  it('refuses a Reference argument, which cannot be part of a key', () => {
    const cv = t.rc.loadBalancedView().withOptions({ cache: freshDir() });
    assert.throws(
      () => cv.apply((x: number) => x, new Reference<number>('x')),
      /args\[0\] is a Reference/,
    );
    assert.throws(
      () => t.rc.loadBalancedView().withOptions({ cache: { maxBytes: 0 } }),
      (e: Error) => e instanceof RangeError && /cache/.test(e.message),
    );
  });

  it('a truncated entry is a miss with a warning, and the call runs again', async () => {
    const dir = freshDir();
    const cv = t.rc.loadBalancedView().withOptions({ cache: dir });
    await cv.apply(slowSquare, 12);
    const [file] = entryFiles(dir);
    truncateSync(file, statSync(file).size - 3);
    const warnings: Error[] = [];
    const listen = (w: Error): number => warnings.push(w);
    process.on('warning', listen);
    try {
      const again = cv.apply(slowSquare, 12);
      assert.equal(again.cached, false);
      assert.equal(await again, 144);
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    } finally {
      process.off('warning', listen);
    }
    assert.equal(warnings.length, 1);
    assert.match(warnings[0].message, /corrupt or truncated/);
    assert.equal(await runs('squareRuns'), 2);
    assert.equal(cv.apply(slowSquare, 12).cached, true);
  });

  it('keeps at most maxBytes, evicting the least recently used entries', async () => {
    const dir = freshDir();
    // Entries of 10, 11, 12 KB and a little: room for about three.
    const cv = t.rc.loadBalancedView().withOptions({ cache: { dir, maxBytes: 36 * 1024 } });
    await cv.apply(kilobytes, 10);
    await cv.apply(kilobytes, 11);
    await cv.apply(kilobytes, 12);
    assert.equal((await t.rc.cacheInfo(dir)).entries, 3);
    // A hit makes 10 the most recent, so 11 is the least recently used when 5 arrives.
    assert.equal(cv.apply(kilobytes, 10).cached, true);
    await cv.apply(kilobytes, 5);
    const info = await t.rc.cacheInfo(dir);
    assert.ok(info.bytes <= 36 * 1024, `${info.bytes} bytes kept`);
    const eleven = cv.apply(kilobytes, 11);
    assert.equal(eleven.cached, false);
    await eleven;
    assert.equal(cv.apply(kilobytes, 10).cached, true);
  });

  it('cacheInfo counts and clearCache empties; true means $TSPARALLEL_DIR/cache', async () => {
    const cv = t.rc.loadBalancedView().withOptions({ cache: true });
    await t.rc.clearCache();
    await cv.apply(slowSquare, 21);
    await cv.apply(slowSquare, 21);
    const info = await t.rc.cacheInfo();
    assert.equal(info.dir, join(process.env.TSPARALLEL_DIR!, 'cache'));
    assert.equal(info.entries, 1);
    assert.ok(info.hits >= 1 && info.misses >= 1);
    await t.rc.clearCache();
    assert.equal((await t.rc.cacheInfo()).entries, 0);
    assert.equal(cv.apply(slowSquare, 21).cached, false);
  });

  it('two processes writing one cache at once leave whole, right entries', async function () {
    this.timeout(60_000);
    const dir = freshDir();
    const index = JSON.stringify(join(__dirname, '..', '..', 'index.js'));
    // Both map the same 200 elements (and 100 of their own) at once, through their own client.
    const writer = (offset: number): string => `
      const { Client } = require(${index});
      Client.connect({ connectionFile: ${JSON.stringify(t.cluster.clientFile)} }).then(async (rc) => {
        const xs = Array.from({ length: 300 }, (_, i) => (i < 200 ? i : i + ${offset}));
        const out = await rc.loadBalancedView().withOptions({ cache: ${JSON.stringify(dir)} })
          .map(${described.toString()}, xs);
        rc.close();
        process.exit(out.every((o, i) => o.x === xs[i] && o.square === xs[i] ** 2) ? 0 : 3);
      }, () => process.exit(4));`;
    const exits = await Promise.all(
      [1000, 2000].map(
        (offset) =>
          new Promise<number | null>((resolve) =>
            spawn(process.execPath, ['-e', writer(offset)], { stdio: 'inherit' }).on(
              'exit',
              resolve,
            ),
          ),
      ),
    );
    assert.deepEqual(exits, [0, 0]);
    assert.equal(entryFiles(dir).length, 400);
    assert.equal(
      readdirSync(dir).some((d) => readdirSync(join(dir, d)).some((f) => f.endsWith('.tmp'))),
      false,
    );
    const xs = [...Array.from({ length: 200 }, (_, i) => i), 1250, 2299];
    const warnings: Error[] = [];
    const listen = (w: Error): number => warnings.push(w);
    process.on('warning', listen);
    const again = t.rc.loadBalancedView().withOptions({ cache: dir }).map(described, xs);
    assert.equal(again.cached, true);
    assert.deepEqual(await again, xs.map(described));
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    process.off('warning', listen);
    assert.equal(warnings.length, 0);
  });
});

describe('the result cache across clusters', () => {
  it('survives the client and the cluster: a new cluster is served from disk', async function () {
    this.timeout(60_000);
    const dir = freshDir();
    const run = async (): Promise<{ cached: boolean; value: number }> => {
      const cluster = await Cluster.start({ engines: 1, controller: FAST_HEARTBEAT });
      try {
        const rc = await cluster.connect();
        const ar = rc.loadBalancedView().withOptions({ cache: dir }).apply(slowSquare, 99);
        const value = await ar;
        rc.close();
        return { cached: ar.cached, value };
      } finally {
        await cluster.stop();
      }
    };
    assert.deepEqual(await run(), { cached: false, value: 9801 });
    assert.deepEqual(await run(), { cached: true, value: 9801 });
  });
});

function entryBytes(dir: string): number {
  return entryFiles(dir).reduce((n, f) => n + statSync(f).size, 0);
}
