import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as zmq from 'zeromq';
import { Client, type ClientEvent } from '../../client/client';
import { Cluster } from '../../cluster/cluster';
import { connectionFilePath, tsparallelDir } from '../../protocol/connection';
import {
  ConnectionError,
  DependencyError,
  EngineError,
  TimeoutError,
  UnknownTaskError,
} from '../../protocol/errors';
import { schemeNames } from '../../controller/schedulers/load-balanced';
import { FAST_HEARTBEAT, useCluster } from './fixture';

describe('client requests on a real cluster', () => {
  const t = useCluster(2);

  it('events() reports engines joining and leaving', async () => {
    const seen: ClientEvent[] = [];
    const iterator = t.rc.events()[Symbol.asyncIterator]();
    const [added] = await t.cluster.addEngines(1);
    for (;;) {
      const { value } = await iterator.next();
      seen.push(value as ClientEvent);
      if (value.type === 'engine:register' && value.engine.id === added) break;
    }
    await t.cluster.stopEngine(added);
    for (;;) {
      const { value } = await iterator.next();
      if (value.type === 'engine:unregister' && value.id === added) {
        assert.match(value.reason, /unregistered/);
        break;
      }
    }
    await iterator.return?.();
  });

  it('events({ outputs: true }) shows the output of another client’s tasks', async () => {
    const spectator = await Client.connect({ connectionFile: t.cluster.clientFile });
    try {
      const events = spectator.events({ outputs: true })[Symbol.asyncIterator]();
      // Prints until seen, so the subscription's start-up time does not matter.
      const ar = t.rc.directView(0).apply(async () => {
        for (let i = 0; i < 250; i++) {
          console.log('visible to all');
          await new Promise((r) => setTimeout(r, 20));
        }
      });
      for (;;) {
        const { value } = await events.next();
        if (value.type !== 'engine:output') continue;
        assert.equal(value.engineId, 0);
        assert.equal(value.msgId, ar.msgIds[0]);
        assert.deepEqual(value.output, {
          type: 'stream',
          name: 'stdout',
          text: 'visible to all\n',
        });
        break;
      }
      await ar.abort();
      await events.return?.();
    } finally {
      spectator.close();
    }
  });

  it('resubmit runs finished tasks again and returns their new results', async () => {
    const ar = t.rc.loadBalancedView().apply((x: number) => x + 1, 41);
    assert.equal(await ar, 42);
    const again = t.rc.resubmit(ar.msgIds);
    assert.deepEqual(await again, [42]);
    assert.notEqual(again.msgIds[0], ar.msgIds[0]);
  });

  it('after waits for a task; a failed dependency fails with DependencyError', async () => {
    const lv = t.rc.loadBalancedView();
    const first = lv.apply(async () => {
      await new Promise((r) => setTimeout(r, 100));
      globalThis.stage = 'first done';
    });
    const second = lv.withOptions({ after: [first] }).apply(() => Date.now());
    const follower = lv.withOptions({ follow: [first] }).apply(() => globalThis.stage);
    const startedAt = await second;
    await first;
    assert.ok(startedAt >= (first.metadata[0].completed as Date).getTime());
    assert.equal(await follower, 'first done', 'follow runs where its dependency ran');
    const failing = lv.apply(() => {
      throw new Error('no');
    });
    await assert.rejects(
      lv
        .withOptions({ after: [failing] })
        .apply(() => 1)
        .get(),
      DependencyError,
    );
  });

  it('imap in order yields results in input order even when later ones finish first', async () => {
    const out: number[] = [];
    const lv = t.rc.loadBalancedView();
    for await (const d of lv.imap(
      async (ms: number) => {
        await new Promise((r) => setTimeout(r, ms));
        return ms;
      },
      [200, 10, 10],
    )) {
      out.push(d);
    }
    assert.deepEqual(out, [200, 10, 10]);
  });

  it('moves 100 MB of Float64Array each way through push and pull', async function () {
    this.timeout(60_000);
    const big = new Float64Array(100 * 1024 * 128).map((_, i) => i);
    await t.rc.directView(0).push({ big });
    const [back] = await t.rc.directView(0).pull<Float64Array>('big');
    assert.equal(back.length, big.length);
    assert.equal(back[back.length - 1], big.length - 1);
    await t.rc.directView(0).execute('delete (globalThis as any).big');
  });

  it('broadcastView runs on every engine like a direct view', async () => {
    assert.deepEqual(await t.rc.broadcastView().apply(() => engineId), t.rc.ids);
  });

  it('refuses a target that is not an engine, naming the live ones', async () => {
    await assert.rejects(
      t.rc
        .directView(99)
        .apply(() => 1)
        .get(),
      (e: unknown) => {
        assert.ok(e instanceof EngineError);
        assert.match(e.message, /engine 99 is not registered; live engines: \d/);
        return true;
      },
    );
    await assert.rejects(t.rc.sendSignal('SIGINT', 99), /engine 99 is not registered/);
    await assert.rejects(
      t.rc.sendSignal('SIGNOPE' as NodeJS.Signals, 0),
      (e: unknown) => e instanceof RangeError && /unknown signal "SIGNOPE"/.test(e.message),
    );
    await assert.rejects(
      t.rc.result('never-sent'),
      (e: unknown) =>
        e instanceof UnknownTaskError && /no task record for never-sent/.test(e.message),
    );
    assert.throws(() => t.rc.directView().withOptions({ retries: 2 }), /load-balanced views only/);
    assert.throws(
      () => t.rc.loadBalancedView().withOptions({ chunkSize: 0 }),
      /chunkSize must be a positive integer/,
    );
  });

  it('close() fails requests still waiting for the controller at once', async () => {
    const rc = await Client.connect({ connectionFile: t.cluster.clientFile });
    const status = rc.queueStatus();
    rc.close();
    await assert.rejects(
      status,
      (e: unknown) => e instanceof ConnectionError && /closed before/.test(e.message),
    );
    assert.throws(() => rc.loadBalancedView().apply(() => 1), /the client is closed/);
  });

  it('refuses arguments of the wrong kind at once, naming them', async () => {
    const dv = t.rc.directView();
    const lv = t.rc.loadBalancedView();
    const wrong = (f: () => unknown, pattern: RegExp): void => assert.throws(f, pattern);
    wrong(() => dv.execute(42 as unknown as string), /execute needs TypeScript source as a string/);
    wrong(() => lv.withOptions({ label: 42 as unknown as string }), /label must be a string/);
    wrong(() => lv.withOptions({ bogus: 1 } as never), /unknown view option bogus/);
    wrong(() => lv.withOptions({ timeout: NaN }), /timeout must be a number >= 0/);
    wrong(
      () => lv.map((x: number) => x, 5 as never),
      /expected an array, typed array or other iterable, got number 5/,
    );
    wrong(() => dv.push(5 as never), /push needs a plain object/);
    wrong(() => dv.scatter('s', 5 as never), /got number 5/);
    wrong(() => dv.scatter('not a name', [1]), /must be a JavaScript identifier/);
    wrong(() => dv.remote(5 as never), /expected a function/);
    await assert.rejects(t.rc.abort(42 as never), /abort needs message ids/);
    await assert.rejects(t.rc.result(123 as never), /result needs message ids/);
    assert.throws(() => t.rc.resubmit(5 as never), /resubmit needs message ids/);
    const single = lv.apply(() => 1);
    assert.equal(
      await lv.withOptions({ after: single }).apply(() => 2),
      2,
      'after takes one task too',
    );
  });

  it('imports modules dynamically in cells', async () => {
    const [reply] = await t.rc
      .directView(0)
      .execute('const p = await import("node:path"); p.join("a", "b")');
    assert.equal(reply.result, "'a/b'");
  });

  it('counts only live engines when adding after one died', async () => {
    const [doomed] = await t.cluster.addEngines(1);
    await assert.rejects(
      t.rc
        .directView(doomed)
        .apply(() => process.exit(1))
        .get(),
      EngineError,
    );
    const [added] = await t.cluster.addEngines(1);
    assert.ok(added > doomed);
  });

  it('waitForEngines says how many registered when it times out', async () => {
    await assert.rejects(t.rc.waitForEngines(10, { timeout: 300 }), (e: unknown) => {
      assert.ok(e instanceof TimeoutError);
      assert.match(e.message, /only \d of 10 engines registered within 300 ms/);
      return true;
    });
  });
});

describe('connecting', () => {
  it('explains a missing or unreadable connection file', async () => {
    await assert.rejects(Client.connect({ profile: 'nowhere' }), (e: unknown) => {
      assert.ok(e instanceof ConnectionError);
      assert.match(
        e.message,
        /cannot read connection file .*profile_nowhere.* Start one with "tsparallel cluster start"/,
      );
      return true;
    });
    const open = join(tsparallelDir(), 'world-readable.json');
    writeFileSync(open, '{}', { mode: 0o644 });
    await assert.rejects(
      Client.connect({ connectionFile: open }),
      /readable by other users .*chmod 600/,
    );
  });

  it('rejects TimeoutError, naming the address, when the controller does not answer', async () => {
    const silent = new zmq.Router({ linger: 0 });
    const iopub = new zmq.Publisher({ linger: 0 });
    await silent.bind('tcp://127.0.0.1:*');
    await iopub.bind('tcp://127.0.0.1:*');
    const file = join(tsparallelDir(), 'silent-controller.json');
    const info = { client: silent.lastEndpoint, iopub: iopub.lastEndpoint, key: 'k' };
    writeFileSync(file, JSON.stringify({ ...info, signature_scheme: 'hmac-sha256' }), {
      mode: 0o600,
    });
    try {
      await assert.rejects(Client.connect({ connectionFile: file, timeout: 300 }), (e: unknown) => {
        assert.ok(e instanceof TimeoutError, String(e));
        assert.match(
          e.message,
          /no answer from the controller at tcp:\/\/127\.0\.0\.1:\d+ within 300 ms/,
        );
        return true;
      });
    } finally {
      silent.close();
      iopub.close();
    }
  });

  it('starts one of two clusters started at once with the same id, and refuses the other', async () => {
    const starts = await Promise.allSettled([
      Cluster.start({ engines: 1, clusterId: 'race', controller: FAST_HEARTBEAT }),
      Cluster.start({ engines: 1, clusterId: 'race', controller: FAST_HEARTBEAT }),
    ]);
    const started = starts.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const refused = starts.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
    try {
      assert.equal(started.length, 1);
      assert.match(refused[0].message, /cluster "race" of profile "default" is running already/);
      const rc = await started[0].connect();
      assert.deepEqual(rc.ids, [0]);
    } finally {
      await Promise.all(started.map((c) => c.stop()));
    }
  });

  it('Cluster.fromFile attaches to a running cluster', async () => {
    const cluster = await Cluster.start({ engines: 1, controller: FAST_HEARTBEAT });
    try {
      const attached = await Cluster.fromFile(cluster.stateFile);
      const rc = await attached.connect();
      assert.deepEqual(rc.ids, [0]);
      rc.close();
      assert.equal(connectionFilePath('client', cluster), cluster.clientFile);
    } finally {
      await cluster.stop();
    }
  });

  it('every scheme balances tasks over both engines', async function () {
    this.timeout(60_000);
    for (const scheme of schemeNames) {
      const cluster = await Cluster.start({
        engines: 2,
        controller: { ...FAST_HEARTBEAT, scheme, hwm: 2 },
      });
      try {
        const rc = await cluster.connect();
        const ids = await rc.loadBalancedView().map(async (_: number) => {
          await new Promise((r) => setTimeout(r, 20));
          return engineId;
        }, Array(12).fill(0));
        assert.deepEqual(new Set(ids), new Set([0, 1]), scheme);
        rc.close();
      } finally {
        await cluster.stop();
      }
    }
  });

  it('works from an ES module', () => {
    const index = join(__dirname, '..', '..', 'index.js');
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { Cluster, Client, RemoteError, Reference } from ${JSON.stringify(index)}; console.log([Cluster, Client, RemoteError, Reference].map((x) => typeof x).join())`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.stdout.trim(), 'function,function,function,function', r.stderr);
  });
});

declare global {
  var stage: string | undefined;
}
declare const engineId: number;
