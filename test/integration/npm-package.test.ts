/**
 * The package as a newcomer meets it, in a copy of this checkout (the real build scripts rewrite
 * dist/, which must not happen under the running tests): `npm pack` builds it, after which the
 * `tsparallel` command still runs; the tarball holds what users run and no tests; installed
 * into an empty project from the registry, its commands and a cluster run; and
 * `tsparallel lab install` in a checkout builds the extension when it is not built yet.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from './kernel-fixture';

interface Manifest {
  bin: Record<string, string>;
  version: string;
}

/** Runs `command` in `cwd`; fails the test with its output unless it succeeds. */
function sh(cwd: string, command: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(command, args, {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(r.status, 0, `${command} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

/** The checkout's files as git sees them (tracked, or new and not ignored): no builds. */
function copyCheckout(to: string): void {
  const files = execFileSync('git', ['ls-files', '-z', '-co', '--exclude-standard'], {
    cwd: ROOT,
    encoding: 'utf8',
  }).split('\0');
  for (const f of files) {
    const from = join(ROOT, f);
    if (!f || f === 'node_modules' || !existsSync(from) || lstatSync(from).isSymbolicLink())
      continue;
    mkdirSync(dirname(join(to, f)), { recursive: true });
    cpSync(from, join(to, f));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(to, 'node_modules'));
}

/** The installed lab extension's manifest, checked to name a bundle that is there. */
function assertLabExtension(dataDir: string): void {
  const ext = join(dataDir, 'labextensions', 'tsparallel');
  const m = JSON.parse(readFileSync(join(ext, 'package.json'), 'utf8')) as {
    jupyterlab: { _build: { load: string } };
  };
  assert.ok(existsSync(join(ext, m.jupyterlab._build.load)), m.jupyterlab._build.load);
}

describe('the npm package, from a fresh copy of the checkout', function () {
  this.timeout(1_800_000);
  let dir: string;
  let checkout: string;
  let tarball: string;
  let manifest: Manifest;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsp-package-'));
    checkout = join(dir, 'checkout');
    copyCheckout(checkout);
    // prepack runs the real `npm run build` and `npm run build:labextension`.
    sh(checkout, 'npm', ['pack', '--silent', '--pack-destination', dir]);
    manifest = JSON.parse(readFileSync(join(checkout, 'package.json'), 'utf8')) as Manifest;
    tarball = join(dir, `tsparallel-${manifest.version}.tgz`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the tsparallel command runnable after the build', () => {
    for (const file of Object.values(manifest.bin))
      accessSync(join(checkout, file), constants.X_OK);
    assert.match(sh(checkout, 'npx', ['tsparallel', '--help']), /^Usage: tsparallel /);
    const [bin] = Object.values(manifest.bin);
    assert.match(sh(checkout, join(checkout, bin), ['--version']), /^\d+\.\d+\.\d+/);
  });

  it('packs what users run, without the compiled tests and the benchmark', () => {
    const entries = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
    const has = (prefix: string) => entries.some((e) => e.startsWith(`package/${prefix}`));
    for (const file of Object.values(manifest.bin)) assert.ok(has(file), file);
    for (const shipped of ['dist/index.js', 'dist/kernel-ext/main.js', 'labextension/build/'])
      assert.ok(has(shipped), shipped);
    for (const left of ['dist/test/', 'dist/bench/', 'labextension/src/', 'test/'])
      assert.ok(!has(left), left);
  });

  it('lab install in a checkout without the extension built builds it, then installs it', () => {
    rmSync(join(checkout, 'labextension', 'build'), { recursive: true });
    const out = sh(checkout, 'npx', ['tsparallel', 'lab', 'install', '--prefix', join(dir, 'c')]);
    assert.match(out, /building the lab extension/);
    assertLabExtension(join(dir, 'c', 'share', 'jupyter'));
  });

  describe('installed from the tarball into an empty project', () => {
    let project: string;
    const prefix = () => join(dir, 'prefix');

    before(() => {
      project = join(dir, 'project');
      mkdirSync(project);
      writeFileSync(
        join(project, 'package.json'),
        JSON.stringify({ name: 'newcomer', version: '1.0.0', private: true }),
      );
      sh(project, 'npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball]);
    });

    it('installs the kernelspec with npx tsparallel kernel install', () => {
      sh(project, 'npx', ['tsparallel', 'kernel', 'install', '--prefix', prefix()]);
      const spec = JSON.parse(
        readFileSync(
          join(prefix(), 'share', 'jupyter', 'kernels', 'tsparallel', 'kernel.json'),
          'utf8',
        ),
      ) as { argv: string[] };
      assert.equal(
        spec.argv[1],
        join(project, 'node_modules', 'tsparallel', 'dist', 'kernel-ext', 'main.js'),
      );
      assert.ok(existsSync(spec.argv[1]));
    });

    it('installs the prebuilt panel with npx tsparallel lab install, building nothing', () => {
      const out = sh(project, 'npx', ['tsparallel', 'lab', 'install', '--prefix', prefix()]);
      assert.doesNotMatch(out, /building/);
      assertLabExtension(join(prefix(), 'share', 'jupyter'));
    });

    it("runs a cluster from a script that requires 'tsparallel'", () => {
      writeFileSync(
        join(project, 'run.js'),
        `const { Cluster } = require('tsparallel');
        (async () => {
          const cluster = await Cluster.start({ engines: 1 });
          try {
            const rc = await cluster.connect();
            console.log(JSON.stringify(await rc.directView().apply((a, b) => a + b, 20, 22).get()));
          } finally {
            await cluster.stop();
          }
        })();`,
      );
      const out = sh(project, process.execPath, ['run.js'], { TSPARALLEL_DIR: join(dir, 'tsp') });
      assert.match(out, /^\[42\]$/m);
    });
  });
});
