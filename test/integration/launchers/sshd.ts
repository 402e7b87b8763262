/**
 * A real OpenSSH server for the ssh launcher's tests: on 127.0.0.1 and an ephemeral port, with a
 * host key, a client key and configuration files made in a temporary folder, letting the
 * current user in by that key only. `sshArgs` point the system `ssh` client at it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './common';

export interface TestSshd {
  /** The host name the client configuration knows. */
  host: string;
  /** `ssh` arguments that reach the server: `-F <config>`. */
  sshArgs: string[];
  /** A folder for the launcher's remote files, removed by `stop`. */
  remoteDir: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts sshd; resolves once it listens. */
export async function startSshd(): Promise<TestSshd> {
  const dir = mkdtempSync(join(tmpdir(), 'tsparallel-sshd-'));
  const key = (name: string): string => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, name)]);
    return readFileSync(join(dir, `${name}.pub`), 'utf8');
  };
  const hostKey = key('host_key');
  writeFileSync(join(dir, 'authorized_keys'), key('client_key'), { mode: 0o600 });
  const port = await freePort();
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'AuthenticationMethods publickey',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      // The key files live in a temporary folder, not the user's home.
      'StrictModes no',
      'UsePAM no',
    ].join('\n') + '\n',
  );
  writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostKey}`);
  writeFileSync(
    join(dir, 'ssh_config'),
    [
      'Host tsparallel-test-host',
      '  HostName 127.0.0.1',
      `  Port ${port}`,
      `  User ${userInfo().username}`,
      `  IdentityFile ${join(dir, 'client_key')}`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${join(dir, 'known_hosts')}`,
      '  StrictHostKeyChecking yes',
    ].join('\n') + '\n',
  );
  // Debian's sshd wants its privilege separation folder, which a service start would create.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    sshd.stderr.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('Server listening on 127.0.0.1')) resolve();
    });
    sshd.on('exit', (code) => reject(new Error(`sshd exited (${code}) before listening: ${log}`)));
  });
  return {
    host: 'tsparallel-test-host',
    sshArgs: ['-F', join(dir, 'ssh_config')],
    remoteDir: join(dir, 'remote'),
    process: sshd,
    stop: async () => {
      if (sshd.exitCode === null) {
        const exited = new Promise((resolve) => sshd.once('exit', resolve));
        sshd.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Pids of the processes below `pid` (children, grandchildren, ...), from /proc. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' })
    .trim()
    .split('\n')) {
    const [child, parent] = entry.trim().split(/\s+/).map(Number);
    children.set(parent, [...(children.get(parent) ?? []), child]);
  }
  const found: number[] = [];
  const visit = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      found.push(c);
      visit(c);
    }
  };
  visit(pid);
  return found;
}
