/**
 * The cluster panel end to end, as a user meets it: Debian's Chromium (driven by playwright-core)
 * on the real JupyterLab `npm run lab` starts (from `.venv-lab/`) with the real tsparallel
 * kernel: the launcher's cards, a notebook whose cells start a cluster and run work on it, a
 * console, a terminal, and the panel checked through the names labextension/README.md lists,
 * at JupyterLab's default sidebar width. No page or console error may occur in the whole
 * session. Screenshots of the panel in the light and dark themes go to test-artifacts/lab/.
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { startLab, type Lab } from '../../labextension/host/lab';

const ROOT = resolve(__dirname, '..', '..', '..');
/** Where the screenshots go; a fixed place so CI can keep them. */
const ARTIFACTS = join(ROOT, 'test-artifacts', 'lab');

/** Generous: two cores shared with other builds and tests. A step's wait ends before the test's. */
const WAIT = 60_000;

/** Resolves once `check` does, asking again every quarter second for up to `WAIT` ms. */
async function until(check: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + WAIT;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`not so within ${WAIT} ms: ${check}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Resolves once `items` matches exactly `n` elements. */
async function count(items: Locator, n: number): Promise<void> {
  if (n > 0) await items.nth(n - 1).waitFor({ state: 'attached' });
  await items.nth(n).waitFor({ state: 'detached' });
}

describe('JupyterLab panel in Chromium (end to end)', function () {
  this.timeout(2 * WAIT);
  let work: string;
  let lab: Lab;
  let browser: Browser;
  let page: Page;
  let notebook: Locator;
  let notebookId: string;
  let panel: Locator;
  let cells = 0;
  /** Every uncaught page error and console error of the session. */
  const errors: string[] = [];

  /** Runs a JupyterLab command in the page; what it returns stays there. */
  async function command(id: string, args: object = {}): Promise<void> {
    await page.evaluate(
      async ([id, args]) => {
        const app = (globalThis as unknown as { jupyterapp: JupyterAppLike }).jupyterapp;
        await app.commands.execute(id, args);
      },
      [id, args] as const,
    );
  }

  /** Opens a new launcher and clicks its card `name` in `category`. */
  async function launch(category: string, name: string | RegExp): Promise<void> {
    await command('launcher:create');
    await page
      .locator(`.jp-Launcher .jp-LauncherCard[data-category="${category}"]`, { hasText: name })
      .last()
      .click();
  }

  /** Types `code` into the notebook's last (empty) cell and runs it; returns its output area. */
  async function run(code: string): Promise<Locator> {
    await page.evaluate(
      (id) =>
        (globalThis as unknown as { jupyterapp: JupyterAppLike }).jupyterapp.shell.activateById(id),
      notebookId,
    );
    const cell = notebook.locator('.jp-CodeCell').nth(cells++);
    await cell.locator('.cm-content').click();
    // insertText, unlike typing key by key, leaves the editor's auto-indent out of it.
    await page.keyboard.insertText(code);
    await page.keyboard.press('Shift+Enter');
    return cell.locator('.jp-OutputArea');
  }

  const engines = (): Locator => panel.locator('.tsp-engines [data-engine-id]');
  const live = (): Locator =>
    panel.locator('.tsp-engines [data-engine-id]:not([data-status="dead"])');
  const tasks = (): Locator => panel.locator('.tsp-tasks tr[data-task-id]');

  before(async function () {
    this.timeout(180_000);
    work = mkdtempSync(join(tmpdir(), 'tsp-lab-e2e-'));
    lab = await startLab({ rootDir: work, env: { TSPARALLEL_DIR: join(work, 'tsparallel') } });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    page.setDefaultTimeout(WAIT);
    // With its stack, which names the code that threw (JupyterLab's or the panel's).
    page.on('pageerror', (e) => errors.push(`page error: ${e.stack ?? e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console error: ${m.text()} (${m.location().url})`);
    });
    await page.goto(lab.url);
    panel = page.locator('#tsparallel-panel');
  });

  // Each step builds on the one before: after a failure, keep its picture and skip the rest.
  let failed = false;
  beforeEach(function () {
    if (failed) this.skip();
  });
  afterEach(async function () {
    if (this.currentTest?.state !== 'failed' || !page) return;
    failed = true;
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'failure.png') });
    console.log(`    the page when it failed: ${join(ARTIFACTS, 'failure.png')}`);
  });

  after(async function () {
    this.timeout(60_000);
    await browser?.close();
    await lab?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("makes a notebook on the tsparallel kernel from the launcher's card and runs a cell", async () => {
    // JupyterLab exposes the application once it has started and restored its layout.
    await page.waitForFunction(() => 'jupyterapp' in globalThis);
    await page
      .locator('.jp-LauncherCard[data-category="Notebook"]', { hasText: 'TypeScript (tsparallel)' })
      .click();
    notebook = page.locator('.jp-NotebookPanel').last();
    await notebook.waitFor();
    notebookId = await notebook.evaluate((n) => n.id);
    // Cells typed before the kernel is up would be lost, as for a user.
    await page
      .locator('#jp-main-statusbar', { hasText: 'TypeScript (tsparallel) | Idle' })
      .waitFor();
    const out = await run('const answer: number = 6 * 7;\nanswer');
    await out.getByText('42', { exact: true }).waitFor();
  });

  it('opens the panel from its sidebar tab at the default width; it says no cluster runs', async () => {
    await page.locator('.jp-SideBar.jp-mod-left [data-id="tsparallel-panel"]').click();
    await panel.locator('.tsp-empty', { hasText: 'No cluster is running' }).waitFor();
  });

  it('shows the two engines %cluster start -n 2 starts', async () => {
    const out = await run('%cluster start -n 2');
    await out.getByText(/Started a cluster with 2 engines/).waitFor();
    await panel.locator('.tsp-empty').waitFor({ state: 'detached' });
    await count(engines(), 2);
    await panel.locator('.tsp-cluster [data-field="controller"]', { hasText: 'tcp://' }).waitFor();
    await panel.locator('.tsp-cluster [data-field="launcher"]', { hasText: 'local' }).waitFor();
  });

  it('shows both engines busy during a %%px cell, then idle, with its tasks', async () => {
    const out = await run(
      '%%px\nconst until = Date.now() + 4000;\nwhile (Date.now() < until);\nconsole.log(`spun on ${process.pid}`);',
    );
    await count(panel.locator('.tsp-engines [data-engine-id][data-status="busy"]'), 2);
    await out.getByText(/\[stdout:1\] spun on \d+/).waitFor();
    await count(panel.locator('.tsp-engines [data-engine-id][data-status="idle"]'), 2);
    const direct = panel.locator('.tsp-tasks tr[data-view="direct"][data-state="done"]');
    await count(direct, 2);
    const onEngines = await direct.evaluateAll((rows) =>
      rows.map((r) => r.getAttribute('data-engine')).sort(),
    );
    assert.deepEqual(onEngines, ['0', '1']);
    await panel.locator('.tsp-views [data-view-id][data-kind="direct"]').first().waitFor();
  });

  it("shows each engine's CPU and memory moving, and a map's progress, while a CPU-bound map runs", async () => {
    const meter = (engine: number, field: 'cpu' | 'memory'): Locator =>
      panel.locator(`[data-engine-id="${engine}"] [data-field="${field}"]`);
    const value = async (m: Locator): Promise<number> =>
      Number((await m.getAttribute('data-value')) || NaN);
    // The engines' heartbeats report their processes.
    await count(panel.locator('.tsp-engines [data-field="memory"]:not([data-value=""])'), 2);
    const memoryBefore = await value(meter(0, 'memory'));
    assert.ok(memoryBefore > 10 * 1024 * 1024, `engine 0 reports ${memoryBefore} bytes`);
    const out = await run(
      'const spun = await rc.loadBalancedView().map((ms: number) => {\n' +
        '  const keep = new Array(2_000_000).fill(ms);\n' +
        '  const until = Date.now() + ms;\n' +
        '  while (Date.now() < until);\n' +
        '  return keep.length;\n' +
        '}, [2000, 2000, 2000, 2000, 2000, 2000, 2000, 2000]);\n' +
        'spun.length',
    );
    const running = panel.locator('.tsp-maps [data-map-id][data-total="8"][data-running="true"]');
    await running.waitFor();
    // Both engines spin: their CPU figures climb. The machine is shared, so a spinning engine
    // may get much less than a whole core; idle engines report about 0 %.
    const cpus = async (): Promise<number[]> =>
      Promise.all([0, 1].map(async (id) => value(meter(id, 'cpu'))));
    await until(async () => (await cpus()).every((c) => c >= 10));
    const progress = Number(await running.getAttribute('data-done'));
    assert.ok(progress < 8, `the bar shows ${progress}/8 while the map runs`);
    await out.getByText('8', { exact: true }).waitFor();
    await panel
      .locator('.tsp-maps [data-map-id][data-done="8"][data-total="8"][data-running="false"]')
      .waitFor();
    assert.notEqual(await value(meter(0, 'memory')), memoryBefore, 'the memory figure moves');
    await until(async () => (await cpus()).every((c) => c < 10));
  });

  it('shows the tasks of a load-balanced map with their engine, result and data, and bars in the chart', async () => {
    const out = await run(
      'declare function publish(data: unknown): void;\n' +
        'const lb = rc.loadBalancedView();\n' +
        'const cubes = await lb.map((x: number) => { publish({ cubing: x }); return x ** 3; }, [11, 12, 13, 14]);\n' +
        'cubes.join(" ")',
    );
    await out.getByText('1331 1728 2197 2744').waitFor();
    await panel.locator('.tsp-views [data-view-id][data-kind="balanced"]').first().waitFor();
    const balanced = panel.locator('.tsp-tasks tr[data-view="balanced"][data-state="done"]');
    // The panel's state follows the cell's output by a moment.
    const cubeRows = balanced.filter({
      has: page.locator('.tsp-preview', { hasText: /\b(1331|1728|2197|2744)\b/ }),
    });
    await count(cubeRows, 4);
    const rows = await balanced.evaluateAll((trs) =>
      trs.map((r) => ({
        engine: r.getAttribute('data-engine'),
        preview: r.querySelector('.tsp-preview')?.textContent ?? '',
      })),
    );
    for (const r of rows) assert.match(r.engine ?? '', /^[01]$/, 'a done task names its engine');
    assert.match(rows.map((r) => r.preview).join(' '), /2744/, 'the previews show the results');
    // The full result opens under the row.
    const last = balanced.filter({ hasText: '2744' }).first();
    await last.click();
    await panel.locator('.tsp-task-output', { hasText: '2744' }).waitFor();
    // With the data the task published last, in its own part.
    await panel
      .locator('.tsp-task-output .tsp-Panel-output.jp-mod-data', { hasText: '{ cubing: 14 }' })
      .waitFor();

    const chart = panel.locator('svg.tsp-task-stream');
    await count(chart.locator('g[data-lane]'), 2);
    const doneIds = await tasks().evaluateAll((trs) =>
      trs.map((r) => r.getAttribute('data-task-id')),
    );
    for (const id of doneIds) await chart.locator(`rect[data-task-id="${id}"]`).waitFor();
  });

  it("tells a task stream bar's task, engine and duration on hover", async () => {
    const bar = panel.locator('svg.tsp-task-stream rect[data-state="done"]').first();
    const id = await bar.getAttribute('data-task-id');
    await bar.hover();
    const tip = panel.locator('.tsp-TaskStream-tip');
    await tip.waitFor();
    assert.equal(await tip.getAttribute('data-task-id'), id);
    assert.match(
      (await tip.textContent()) ?? '',
      new RegExp(`^task ${id?.slice(0, 6)} · engine [01] · [0-9.]+ (ms|s) · done$`),
    );
    await panel.locator('.tsp-Panel-header').hover();
    await tip.waitFor({ state: 'detached' });
  });

  it("fits JupyterLab's default sidebar width without scrolling sideways", async () => {
    const widths = await panel.evaluate((p) => ({ scroll: p.scrollWidth, client: p.clientWidth }));
    assert.ok(widths.client < 400, `the sidebar is ${widths.client} px wide, as by default`);
    assert.ok(widths.scroll <= widths.client, JSON.stringify(widths));
  });

  it('takes screenshots of the panel in the light and dark themes', async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    await panel.screenshot({ path: join(ARTIFACTS, 'panel-light.png') });
    await command('apputils:change-theme', { theme: 'JupyterLab Dark' });
    await page.locator('body[data-jp-theme-light="false"]').waitFor({ state: 'attached' });
    await panel.screenshot({ path: join(ARTIFACTS, 'panel-dark.png') });
    console.log(`    panel screenshots: ${ARTIFACTS}/panel-{light,dark}.png`);
  });

  it('clears the finished tasks and maps with "clear finished"', async () => {
    await command('apputils:change-theme', { theme: 'JupyterLab Light' });
    await panel.locator('[data-action="tasks-clear"]').click();
    await count(tasks(), 0);
    await count(panel.locator('.tsp-maps [data-map-id]'), 0);
    await count(panel.locator('svg.tsp-task-stream rect[data-task-id]'), 0);
    assert.equal(await panel.locator('[data-action="tasks-clear"]').isDisabled(), true);
  });

  it("runs a %px line in a tsparallel console from the launcher's card", async () => {
    await launch('Console', 'TypeScript (tsparallel)');
    const console = page.locator('.jp-CodeConsole').last();
    await page
      .locator('#jp-main-statusbar', { hasText: 'TypeScript (tsparallel) | Idle' })
      .waitFor();
    const prompt = console.locator('.jp-CodeConsole-promptCell .cm-content');
    for (const line of ['%cluster start -n 1', '%px 6 * 7']) {
      await prompt.click();
      await page.keyboard.insertText(line);
      await page.keyboard.press('Shift+Enter');
    }
    await console.getByText(/Out\[0:\d+\]: 42/).waitFor();
  });

  it("opens a terminal from the launcher's card", async () => {
    await launch('Other', 'Terminal');
    const terminal = page.locator('.jp-Terminal').last();
    await terminal.locator('.xterm-screen').waitFor();
    await terminal.locator('.xterm-helper-textarea').focus();
    // The terminal draws on a canvas: what the shell did shows in the lab's folder instead.
    await page.keyboard.type('echo tsp-$((6 * 7)) > from-terminal.txt\n');
    const file = join(work, 'from-terminal.txt');
    await until(async () => existsSync(file) && readFileSync(file, 'utf8') === 'tsp-42\n');
  });

  it('opens the panel from the "Parallel Cluster" launcher card', async () => {
    // Close the sidebar first, so that the card is what brings the panel back.
    await page.locator('.jp-SideBar.jp-mod-left [data-id="tsparallel-panel"]').click();
    await panel.waitFor({ state: 'hidden' });
    await launch('Other', /^Parallel Cluster$/);
    await panel.waitFor({ state: 'visible' });
    await count(live(), 2);
  });

  it('stops an engine with its stop button and adds one with the add button', async () => {
    await panel.locator('[data-engine-id="1"] [data-action="engine-stop"]').click();
    // The stopped engine's row stays, marked dead, so its history still reads right.
    await panel.locator('[data-engine-id="1"][data-status="dead"]').waitFor();
    await count(live(), 1);
    await panel.locator('.tsp-cluster [data-action="engine-add"]').click();
    await count(live(), 2);
    await count(panel.locator('.tsp-engines [data-engine-id][data-status="idle"]'), 2);
  });

  it('scales to the count typed into the engines field with the scale button', async () => {
    await panel.locator('.tsp-cluster input[name="engines"]').fill('3');
    await panel.locator('.tsp-cluster [data-action="cluster-scale"]').click();
    await count(live(), 3);
  });

  it("reconnects after the kernel restarts: the new kernel's cluster shows", async () => {
    await page.evaluate(async (id) => {
      const app = (globalThis as unknown as { jupyterapp: JupyterAppLike }).jupyterapp;
      const widget = [...app.shell.widgets('main')].find((w) => w.id === id);
      // The kernel's own restart: the notebook's command would ask in a dialog first.
      await widget?.sessionContext.session?.kernel?.restart();
    }, notebookId);
    // The old kernel's cluster went with it; only a new comm brings the new kernel's state.
    await panel.locator('.tsp-empty', { hasText: 'No cluster is running' }).waitFor();
    const out = await run('%cluster start -n 1');
    await out.getByText(/Started a cluster with 1 engines/).waitFor();
    await count(live(), 1);
  });

  it('returns to the empty state after %cluster stop', async () => {
    const out = await run('%cluster stop');
    await out.getByText(/Stopped the cluster/).waitFor();
    await panel.locator('.tsp-empty', { hasText: 'No cluster is running' }).waitFor();
  });

  it('had no page error and no console error in the whole session', () => {
    assert.deepEqual(errors, []);
  });
});

/** The part of the JupyterLab application object the test reaches for. */
interface JupyterAppLike {
  commands: { execute(id: string, args?: object): Promise<unknown> };
  shell: {
    activateById(id: string): void;
    widgets(area: 'main'): Iterable<{
      id: string;
      sessionContext: { session: { kernel: { restart(): Promise<void> } | null } | null };
    }>;
  };
}
