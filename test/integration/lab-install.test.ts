/**
 * `tsparallel lab install` on the extension `npm test` builds first: the copy JupyterLab loads
 * from `share/jupyter/labextensions/tsparallel/` holds the manifest with `_build` and the
 * module-federation entry it names, and the real JupyterLab of `.venv-lab/` lists it as
 * compatible.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { runInNewContext } from 'node:vm';
import { LAB_VENV } from '../../labextension/host/lab';
import { CLI } from '../../cluster/launchers/launcher';
import { PYTHON } from './kernel-fixture';

interface Manifest {
  name: string;
  jupyterlab: { _build: { load: string; extension?: string; style?: string } };
}

describe('tsparallel lab install', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tsp-lab-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const install = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, [CLI, 'lab', 'install', ...args], {
      env: { ...process.env, JUPYTER_DATA_DIR: join(dir, 'user'), ...env },
      encoding: 'utf8',
    });
  const installed = (dataDir: string) => join(dataDir, 'labextensions', 'tsparallel');

  /** Checks what JupyterLab reads: the manifest, and the files its `_build` names. */
  const assertLoadable = (ext: string): void => {
    const m = JSON.parse(readFileSync(join(ext, 'package.json'), 'utf8')) as Manifest;
    assert.equal(m.name, 'tsparallel');
    assert.equal(m.jupyterlab._build.extension, './extension');
    assert.equal(m.jupyterlab._build.style, './style');
    assert.match(m.jupyterlab._build.load, /^static\/remoteEntry\.[0-9a-f]+\.js$/);
    // Run as a page's <script> runs it (the browser test loads it in Chromium), the entry
    // defines the federation container JupyterLab looks up by the extension's name.
    const src = `http://127.0.0.1/lab/extensions/tsparallel/${m.jupyterlab._build.load}`;
    const page: Record<string, unknown> & {
      _JUPYTERLAB?: Record<string, { get: unknown; init: unknown }>;
    } = { document: { currentScript: { tagName: 'SCRIPT', src } } };
    page.self = page;
    runInNewContext(readFileSync(join(ext, m.jupyterlab._build.load), 'utf8'), page);
    assert.equal(typeof page._JUPYTERLAB?.tsparallel.get, 'function');
    assert.equal(typeof page._JUPYTERLAB?.tsparallel.init, 'function');
  };

  it('copies the built extension into the user data directory by default', () => {
    const r = install([]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /installed the JupyterLab extension "tsparallel" in .*user/);
    assertLoadable(installed(join(dir, 'user')));
  });

  it('installs under --prefix, replacing an older copy whole', () => {
    const ext = installed(join(dir, 'p', 'share', 'jupyter'));
    assert.equal(install(['--prefix', join(dir, 'p')]).status, 0);
    writeFileSync(join(ext, 'static', 'remoteEntry.0ld.js'), '');
    assert.equal(install(['--prefix', join(dir, 'p')]).status, 0);
    assertLoadable(ext);
    assert.equal(
      readdirSync(join(ext, 'static')).filter((f) => f.startsWith('remoteEntry.')).length,
      1,
    );
  });

  it("installs under --sys-prefix of the python3 on PATH (here a real venv's)", () => {
    const venv = join(dir, 'venv');
    execFileSync(PYTHON, ['-m', 'venv', '--without-pip', venv]);
    const r = install(['--sys-prefix'], { PATH: `${join(venv, 'bin')}:${process.env.PATH}` });
    assert.equal(r.status, 0, r.stderr);
    assertLoadable(installed(join(venv, 'share', 'jupyter')));
  });

  it("is listed as enabled and OK (not incompatible) by the lab's JupyterLab", function () {
    // Two runs of Jupyter's Python, each seconds long alone and tens of seconds on a busy machine.
    this.timeout(120_000);
    const jupyter = join(LAB_VENV, 'bin', 'jupyter');
    assert.equal(install(['--prefix', join(dir, 'p')]).status, 0);
    const list = spawnSync(jupyter, ['labextension', 'list'], {
      env: {
        ...process.env,
        JUPYTER_PATH: join(dir, 'p', 'share', 'jupyter'),
        JUPYTER_CONFIG_DIR: join(dir, 'config'),
        JUPYTER_DATA_DIR: join(dir, 'data'),
      },
      encoding: 'utf8',
    });
    assert.equal(list.status, 0, list.stderr);
    // It reports on stderr, in colour.
    const text = stripVTControlCharacters(list.stdout + list.stderr);
    const version = execFileSync(jupyter, ['lab', '--version'], { encoding: 'utf8' }).trim();
    assert.match(text, new RegExp(`JupyterLab v${version.replace(/\./g, '\\.')}`));
    assert.match(text, /^\s+tsparallel v0\.1\.0 enabled OK$/m, text);
    assert.doesNotMatch(text, /not compatible/, text);
  });

  it('refuses two places at once in one sentence and status 2', () => {
    const r = install(['--sys-prefix', '--prefix', dir]);
    assert.equal(r.status, 2);
    assert.match(
      r.stderr,
      /^error: option '--prefix <path>' cannot be used with option '--sys-prefix'/,
    );
    assert.equal(existsSync(join(dir, 'user')), false);
  });
});
