/**
 * The cluster panel end to end, as a user meets it: Debian's Chromium (driven by playwright-core)
 * on the JupyterLab host (`npm run lab`'s server) with the real tsparallel kernel, a notebook
 * whose cells start a cluster and run work on it, and the panel checked through the names
 * labextension/README.md lists. Screenshots of the panel in the light and dark themes are written to
 * test-artifacts/lab/.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { startLabHost, type LabHost } from '../../cluster/lab-host';

const ROOT = resolve(__dirname, '..', '..', '..');
/** Where the screenshots go; a fixed place so CI can keep them. */
const ARTIFACTS = join(ROOT, 'test-artifacts', 'lab');

/** Generous: two cores shared with other builds and tests. A step's wait ends before the test's. */
const WAIT = 60_000;

/** Resolves once `items` matches exactly `n` elements. */
async function count(items: Locator, n: number): Promise<void> {
  if (n > 0) await items.nth(n - 1).waitFor({ state: 'attached' });
  await items.nth(n).waitFor({ state: 'detached' });
}

describe('JupyterLab panel in Chromium (end to end)', function () {
  this.timeout(2 * WAIT);
  let work: string;
  let lab: LabHost;
  let browser: Browser;
  let page: Page;
  let notebook: Locator;
  let notebookId: string;
  let panel: Locator;
  let cells = 0;

  /** Types `code` into the notebook's last (empty) cell and runs it; returns its output area. */
  async function run(code: string): Promise<Locator> {
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
    lab = await startLabHost({ rootDir: work, env: { TSPARALLEL_DIR: join(work, 'tsparallel') } });
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

  it('opens the panel from its sidebar tab; with no notebook it says so', async () => {
    // The host exposes the application once it has started and restored its layout.
    await page.waitForFunction(() => 'jupyterapp' in globalThis);
    await page.locator('.jp-SideBar.jp-mod-left [data-id="tsparallel-panel"]').click();
    // Widen the sidebar, as a user would by dragging its edge, so the panel's tables fit.
    const edge = await page
      .locator('#jp-main-split-panel > .lm-SplitPanel-handle')
      .first()
      .boundingBox();
    assert.ok(edge, 'the sidebar has an edge to drag');
    await page.mouse.move(edge.x + edge.width / 2, edge.y + edge.height / 2);
    await page.mouse.down();
    await page.mouse.move(620, edge.y + edge.height / 2, { steps: 5 });
    await page.mouse.up();
    await panel.locator('.tsp-empty', { hasText: 'No notebook is open' }).waitFor();
  });

  it('runs a cell of a new notebook on the tsparallel kernel; the panel says no cluster runs', async () => {
    const id = await page.evaluate(async () => {
      const app = (globalThis as unknown as { jupyterapp: JupyterAppLike }).jupyterapp;
      const widget = await app.commands.execute('notebook:create-new', {
        kernelName: 'tsparallel',
      });
      return widget.id;
    });
    notebookId = id;
    notebook = page.locator(`[id="${id}"]`);
    // Cells typed before the kernel is up would be lost, as for a user.
    await page
      .locator('#jp-main-statusbar', { hasText: 'TypeScript (tsparallel) | Idle' })
      .waitFor();
    const out = await run('const answer: number = 6 * 7;\nanswer');
    await out.getByText('42', { exact: true }).waitFor();
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

  it('shows the tasks of a load-balanced map with their engine and result, and bars in the chart', async () => {
    const out = await run(
      'const lb = rc.loadBalancedView();\n' +
        'const cubes = await lb.map((x: number) => x ** 3, [11, 12, 13, 14]);\n' +
        'cubes.join(" ")',
    );
    await out.getByText('1331 1728 2197 2744').waitFor();
    await panel.locator('.tsp-views [data-view-id][data-kind="balanced"]').first().waitFor();
    const balanced = panel.locator('.tsp-tasks tr[data-view="balanced"][data-state="done"]');
    await balanced.first().waitFor();
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

    const chart = panel.locator('svg.tsp-task-stream');
    await count(chart.locator('g[data-lane]'), 2);
    const doneIds = await tasks().evaluateAll((trs) =>
      trs.map((r) => r.getAttribute('data-task-id')),
    );
    for (const id of doneIds) await chart.locator(`rect[data-task-id="${id}"]`).waitFor();
  });

  it('takes screenshots of the panel in the light and dark themes', async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    await panel.screenshot({ path: join(ARTIFACTS, 'panel-light.png') });
    await page.evaluate(() =>
      (globalThis as unknown as { jupyterapp: JupyterAppLike }).jupyterapp.commands.execute(
        'apputils:change-theme',
        { theme: 'JupyterLab Dark' },
      ),
    );
    await page.locator('body[data-jp-theme-light="false"]').waitFor({ state: 'attached' });
    await panel.screenshot({ path: join(ARTIFACTS, 'panel-dark.png') });
    console.log(`    panel screenshots: ${ARTIFACTS}/panel-{light,dark}.png`);
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
});

/** The part of the JupyterLab application object the test reaches for. */
interface JupyterAppLike {
  commands: { execute(id: string, args?: object): Promise<{ id: string }> };
  shell: {
    widgets(area: 'main'): Iterable<{
      id: string;
      sessionContext: { session: { kernel: { restart(): Promise<void> } | null } | null };
    }>;
  };
}
