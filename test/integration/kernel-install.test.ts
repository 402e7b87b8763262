import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../../cluster/launchers/launcher';
import { RECEIVER_TUNABLES } from '../../protocol/shared-memory';
import { DIST } from './kernel-fixture';

describe('tsparallel kernel install', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tsp-install-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const install = (args: string[]) =>
    spawnSync(process.execPath, [CLI, 'kernel', 'install', ...args], {
      env: { ...process.env, JUPYTER_DATA_DIR: join(dir, 'user') },
      encoding: 'utf8',
    });
  const spec = (path: string) =>
    JSON.parse(readFileSync(join(path, 'kernels', 'tsparallel', 'kernel.json'), 'utf8')) as {
      argv: string[];
      display_name: string;
      language: string;
      env: Record<string, string>;
    };

  it('writes the kernelspec for the user, which runs our kernel with the connection file', () => {
    const r = install(['--user']);
    assert.equal(r.status, 0, r.stderr);
    const s = spec(join(dir, 'user'));
    assert.equal(s.display_name, 'TypeScript (tsparallel)');
    assert.equal(s.language, 'typescript');
    assert.deepEqual(s.argv, [
      process.execPath,
      join(DIST, 'kernel-ext', 'main.js'),
      '{connection_file}',
    ]);
    assert.equal(s.env.GLIBC_TUNABLES, RECEIVER_TUNABLES.join(':'));
  });

  it('writes it under --prefix', () => {
    assert.equal(install(['--prefix', join(dir, 'p')]).status, 0);
    assert.equal(spec(join(dir, 'p', 'share', 'jupyter')).language, 'typescript');
  });

  it('refuses --user with --prefix in one sentence and status 2', () => {
    const r = install(['--user', '--prefix', dir]);
    assert.equal(r.status, 2);
    assert.match(
      r.stderr,
      /^error: option '--prefix <path>' cannot be used with option '--user' \(see --help\)\n$/,
    );
  });
});
