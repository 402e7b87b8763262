/**
 * Progress bars in the notebook, seen through a real Jupyter client (Debian's jupyter_client):
 * a call a cell awaits over a second shows a bar that is updated in place and finalised; one
 * with `progress: false` or a short one shows none; interrupting a cell, while it awaits its
 * engines or in its own code, frees the engines from the tasks it sent.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import {
  drive,
  installKernel,
  ofType,
  ROOT,
  type Executed,
  type KernelEnv,
} from './kernel-fixture';

const sleepMap = (options: string): string =>
  `await rc.loadBalancedView()${options}.map(async (ms: number) => {\n` +
  '  await new Promise((r) => setTimeout(r, ms));\n  return ms;\n}, [800, 800, 800, 800])';

// Engines left looping would time this out.
const freeEngines = 'await rc.directView().withOptions({ timeout: 20_000 }).apply(() => engineId)';

const cells = {
  start: '%cluster start -n 2',
  slowMap: sleepMap(''),
  quiet: sleepMap('.withOptions({ progress: false })'),
  short: 'await rc.loadBalancedView().apply(() => 1)',
  batches:
    "import { tableFromArrays, type Table } from 'apache-arrow';\n" +
    'const t = tableFromArrays({ x: Float64Array.from({ length: 1000 }, (_, i) => i) });\n' +
    'const out = await rc.loadBalancedView().mapBatches(t, async (b: Table) => {\n' +
    '  await new Promise((r) => setTimeout(r, 300));\n  return b;\n}, { rows: 100 });\nout.numRows',
  direct: 'await rc.directView().apply(() => new Promise((r) => setTimeout(r, 1500)))',
  engineId: 'declare const engineId: number;',
  // Interrupted while it awaits both engines looping, its bar showing.
  spinAwaited:
    "setTimeout(() => console.log('waiting'), 1500);\n" +
    'await rc.directView().apply(() => {\n  for (;;);\n})',
  afterAwaited: freeEngines,
  // Interrupted in its own loop, before it awaits what it sent.
  spinSync:
    'const sent = rc.loadBalancedView().map((_: number) => {\n  for (;;);\n}, [1, 2]);\n' +
    "console.log('waiting');\nfor (;;);",
  afterSync: freeEngines,
  // Interrupted as it sends and begins to await: in its own code or in the await, by chance.
  spinAtOnce: "console.log('waiting');\nawait rc.directView().apply(() => {\n  for (;;);\n})",
  afterAtOnce: freeEngines,
  stop: '%cluster stop',
};

/** `e` ran `freeEngines` in time: both engines answered. */
function assertFree(e: Executed): void {
  assert.equal(e.reply.status, 'ok', JSON.stringify(e.iopub));
  const result = ofType(e, 'execute_result')[0].data as Record<string, string>;
  assert.equal(result['text/plain'], '[ 0, 1 ]');
}

/** The progress display messages of one execution: [type, text/plain, text/html, display id]. */
function bars(e: Executed): [string, string, string, string][] {
  return e.iopub
    .filter(([t]) => t === 'display_data' || t === 'update_display_data')
    .map(([t, c]) => {
      const data = c.data as Record<string, string>;
      const transient = c.transient as { display_id?: string } | undefined;
      return [t, data['text/plain'], data['text/html'], transient?.display_id ?? ''];
    });
}

describe('kernel progress bars, driven by jupyter_client', function () {
  this.timeout(600_000);
  let k: KernelEnv;
  const r = {} as Record<keyof typeof cells, Executed>;

  before(async () => {
    k = await installKernel();
    // The notebook's folder has tsparallel and apache-arrow installed, as a user's project would.
    mkdirSync(join(k.dir, 'node_modules'));
    symlinkSync(ROOT, join(k.dir, 'node_modules', 'tsparallel'));
    symlinkSync(
      join(ROOT, 'node_modules', 'apache-arrow'),
      join(k.dir, 'node_modules', 'apache-arrow'),
    );
    const names = Object.keys(cells) as (keyof typeof cells)[];
    const results = await drive(
      k,
      names.map((n) => ({
        op: 'execute',
        code: cells[n],
        ...(n.startsWith('spin') ? { interrupt_on: 'waiting' } : {}),
      })),
    );
    names.forEach((n, i) => (r[n] = results[i] as Executed));
  });
  after(() => k?.cleanup());

  it('shows a bar for a map awaited over a second, updates it in place, and finalises it', () => {
    assert.equal(r.slowMap.reply.status, 'ok', JSON.stringify(r.slowMap.iopub));
    const shown = bars(r.slowMap);
    assert.ok(shown.length >= 2, JSON.stringify(shown));
    const [first, ...updates] = shown;
    assert.equal(first[0], 'display_data');
    assert.match(first[3], /^tsparallel-progress-/);
    assert.match(first[1], /^\[[#.]+\] [0-3]\/4 tasks, \d+\.\d s/);
    assert.match(first[2], /<progress value="[0-3]" max="4"><\/progress>/);
    for (const u of updates) {
      assert.equal(u[0], 'update_display_data');
      assert.equal(u[3], first[3], 'updates go to the same display');
    }
    const last = shown.at(-1)!;
    assert.match(
      last[1],
      /^\[#{30}\] 4\/4 tasks, done in \d+\.\d s\nengine 0: \d done, engine 1: \d done$/,
    );
  });

  it('shows no bar with withOptions({ progress: false }), nor for a short call', () => {
    assert.equal(r.quiet.reply.status, 'ok');
    assert.deepEqual(bars(r.quiet), []);
    assert.equal(r.short.reply.status, 'ok');
    assert.deepEqual(bars(r.short), []);
  });

  it('counts mapBatches by batch, and a direct view per engine', () => {
    assert.equal(r.batches.reply.status, 'ok', JSON.stringify(r.batches.iopub));
    assert.match(bars(r.batches).at(-1)![1], /10\/10 tasks, done in/);
    const result = ofType(r.batches, 'execute_result')[0].data as Record<string, string>;
    assert.equal(result['text/plain'], '1000');
    assert.equal(r.direct.reply.status, 'ok', JSON.stringify(r.direct.iopub));
    const direct = bars(r.direct);
    assert.match(direct[0][1], /0\/2 tasks.*\nengine 0: 0\/1, engine 1: 0\/1$/);
    assert.match(direct.at(-1)![1], /2\/2 tasks, done in .*\nengine 0: 1 done, engine 1: 1 done$/);
  });

  it('an interrupt while a cell awaits looping engines aborts what it awaits, and the engines go on', () => {
    assert.equal(r.spinAwaited.reply.status, 'error', JSON.stringify(r.spinAwaited.iopub));
    assert.match(bars(r.spinAwaited)[0][1], /^\[\.+\] 0\/2 tasks/);
    assertFree(r.afterAwaited);
  });

  it('an interrupt of a cell in its own loop aborts what it sent, and the engines go on', () => {
    assert.equal(r.spinSync.reply.status, 'error', JSON.stringify(r.spinSync.iopub));
    assert.match(r.spinSync.reply.evalue ?? '', /interrupted/);
    assertFree(r.afterSync);
  });

  it('an interrupt as a cell begins to await what it sent aborts that, and the engines go on', () => {
    assert.equal(r.spinAtOnce.reply.status, 'error', JSON.stringify(r.spinAtOnce.iopub));
    assertFree(r.afterAtOnce);
  });
});
