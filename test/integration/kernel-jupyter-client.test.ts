/**
 * A real Jupyter client (Debian's jupyter_client) drives the installed kernelspec through one
 * notebook session: plain TypeScript cells, magics, a cluster, output from the engines, errors,
 * progress, --timeout, an interrupt during %%px, and code and magics sharing one client.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import * as ts from 'typescript';
import { Cluster } from '../../index';
import {
  drive,
  installKernel,
  ofType,
  ROOT,
  streamText,
  type Executed,
  type KernelEnv,
} from './kernel-fixture';

const cells = {
  plain: 'const x: number = 20; x + 22',
  print: 'console.log("plain out"); console.error("plain err")',
  typeError: 'const y: number = "text"',
  localSpin: 'console.log("local spin"); while (true) {}',
  afterLocalSpin: '"kernel alive"',
  badTargets: '%%px --targets nonsense\nconsole.log("ran anyway")',
  badTimeout: '%pxconfig --timeout soon',
  unknownMagic: '%pxx 1',
  noCluster: '%px 1 + 1',
  start: '%cluster start -n 2 --resources gpu=1',
  px: '%%px\nconsole.log(`engine says ${1 + 1}`); display.html("<b>rich</b>"); 6 * 7',
  pxError: '%%px --targets 1\nthrow new TypeError("boom")',
  progress: '%%px --progress-after 0\nawait new Promise((r) => setTimeout(r, 300)); "slow"',
  data: '%%px --data\npublish({ step: 1 }); publish({ step: engineId + 2 }); "published"',
  timeout: '%%px --timeout 1\nawait new Promise((r) => setTimeout(r, 600_000))',
  afterTimeout: '%px "usable"',
  spin: '%%px\nconsole.log("spinning"); while (true) {}',
  afterInterrupt: '%px "alive"',
  local: '%%px --local --targets 0\nconst here = 5; console.log(`ran ${here}`)',
  grouped: '%%px --no-stream --group-outputs engine\nconsole.log("out"); console.error("err")',
  configTargets: '%pxconfig --targets 1',
  onConfigured: '%px "configured"',
  configAll: '%pxconfig --targets all',
  fromCode: 'await rc.loadBalancedView().map((n: number) => n * n, [1, 2, 3])',
  // Without --resources reaching the engines this fails at once, naming gpu.
  onGpu:
    'await rc.loadBalancedView().withOptions({ resources: { gpu: 1 } }).apply(() => "ran where a gpu is")',
  noblock: '%%px --noblock --out later\n"done later"',
  pxresult: '%pxresult',
  awaitOut: '(await later).length',
  status: '%cluster status',
  stop: '%cluster stop',
  codeCluster:
    'import { Cluster, notebookClient } from "tsparallel";\n' +
    'const mine = await Cluster.start({ engines: 1 });\nconst mineRc = await mine.connect();\n' +
    'notebookClient() === mineRc',
  pxOnCodeCluster: '%px "on the cluster made in code"',
  autopxOn: '%autopx',
  autopxCell: 'typeof process.pid',
  autopxOff: '%autopx',
  stopCodeCluster: '%cluster stop',
  connect: '%cluster connect CLIENT_FILE',
  pxOnConnected: '%px "connected"',
  disconnect: '%cluster stop',
};

describe('kernel driven by jupyter_client', function () {
  this.timeout(600_000);
  let k: KernelEnv;
  /** A cluster started outside the notebook, for %cluster connect. */
  let outside: Cluster;
  const r = {} as Record<keyof typeof cells, Executed>;
  let info: Record<string, unknown>;
  let commInfo: { msg_type: string; content: Record<string, unknown> };

  before(async () => {
    k = await installKernel();
    // The notebook's folder has tsparallel installed, as a user's project would.
    mkdirSync(join(k.dir, 'node_modules'));
    symlinkSync(ROOT, join(k.dir, 'node_modules', 'tsparallel'));
    process.env.TSPARALLEL_DIR ??= join(k.dir, 'outside');
    outside = await Cluster.start({ engines: 1, profile: 'outside' });
    const names = Object.keys(cells) as (keyof typeof cells)[];
    const steps = [
      { op: 'kernel_info' },
      { op: 'comm_info' },
      ...names.map((n) => ({
        op: 'execute',
        code: cells[n].replace('CLIENT_FILE', outside.clientFile),
        // Interrupt once both engines spin, so that both get the signal.
        ...(n === 'spin' ? { interrupt_on: 'spinning', engines: 2 } : {}),
        ...(n === 'localSpin' ? { interrupt_on: 'local spin' } : {}),
      })),
    ];
    const results = await drive(k, steps);
    info = results[0] as Record<string, unknown>;
    commInfo = results[1] as typeof commInfo;
    names.forEach((n, i) => (r[n] = results[i + 2] as Executed));
  });
  after(async () => {
    await outside?.stop();
    k?.cleanup();
  });

  const errorOf = (e: Executed): Record<string, unknown> => {
    const errors = ofType(e, 'error');
    assert.equal(errors.length, 1, JSON.stringify(e.iopub));
    return errors[0];
  };

  it('answers kernel_info and comm_info_request as the protocol says', () => {
    assert.equal(info.implementation, 'tsparallel');
    const language = info.language_info as { name: string; version: string };
    assert.equal(language.name, 'typescript');
    // The TypeScript the engines compile with, not tslab's own; JupyterLab asks for a debugger
    // unless told there is none, and lists help_links in its Help menu.
    assert.equal(language.version, ts.version);
    assert.equal(info.debugger, false);
    const links = info.help_links as { text: string; url: string }[];
    assert.ok(links.length > 0 && links.every((l) => l.text && /^https:\/\//.test(l.url)));
    assert.equal(commInfo.msg_type, 'comm_info_reply');
    assert.deepEqual(commInfo.content, { status: 'ok', comms: {} });
  });

  it('runs plain cells as tslab does, busy first and idle last', () => {
    const e = r.plain;
    assert.deepEqual(e.iopub[0], ['status', { execution_state: 'busy' }]);
    assert.deepEqual(e.iopub.at(-1), ['status', { execution_state: 'idle' }]);
    assert.equal(e.iopub[1][0], 'execute_input');
    assert.equal(
      (ofType(e, 'execute_result')[0].data as Record<string, string>)['text/plain'],
      '42',
    );
    assert.equal(streamText(r.print), 'plain out\n');
    assert.equal(streamText(r.print, 'stderr'), 'plain err\n');
  });

  it('reports a type error as one error', () => {
    assert.equal(r.typeError.reply.status, 'error');
    assert.match(String(errorOf(r.typeError).evalue), /not assignable to type 'number'/);
  });

  it('an interrupt breaks a busy loop in a plain cell, as in tslab', () => {
    assert.equal(r.localSpin.reply.status, 'error');
    assert.match(String(errorOf(r.localSpin).evalue), /interrupted/i);
    assert.equal(
      (ofType(r.afterLocalSpin, 'execute_result')[0].data as Record<string, string>)['text/plain'],
      'kernel alive',
    );
  });

  it('refuses bad magic options with one sentence and runs nothing', () => {
    for (const e of [r.badTargets, r.badTimeout, r.unknownMagic, r.noCluster]) {
      assert.equal(e.reply.status, 'error');
      const err = errorOf(e);
      assert.equal(err.ename, 'UsageError');
      assert.equal(ofType(e, 'stream').length, 0, 'nothing ran');
    }
    assert.match(String(errorOf(r.badTargets).evalue), /--targets takes all/);
    assert.match(
      String(errorOf(r.badTimeout).evalue),
      /--timeout needs a positive number of seconds, got 'soon'/,
    );
    assert.match(String(errorOf(r.unknownMagic).evalue), /there is no magic %pxx/);
    assert.match(String(errorOf(r.noCluster).evalue), /%cluster start/);
  });

  it('%cluster start starts engines and %%px streams their output with engine prefixes', () => {
    assert.equal(r.start.reply.status, 'ok');
    assert.match(streamText(r.start), /Started a cluster with 2 engines/);
    const out = streamText(r.px);
    assert.match(out, /^\[stdout:0\] engine says 2$/m);
    assert.match(out, /^\[stdout:1\] engine says 2$/m);
    const html = ofType(r.px, 'display_data').filter(
      (d) => (d.data as Record<string, string>)['text/html'],
    );
    assert.equal(html.length, 2);
    const results = ofType(r.px, 'execute_result').map(
      (c) => (c.data as Record<string, string>)['text/plain'],
    );
    assert.equal(results.length, 2);
    assert.match(results[0], /^Out\[0:\d+\]: 42$/);
    assert.match(results[1], /^Out\[1:\d+\]: 42$/);
  });

  it('shows an engine error as [id:execute] with its stack', () => {
    assert.equal(r.pxError.reply.status, 'error');
    const tb = errorOf(r.pxError).traceback as string[];
    assert.equal(tb[0], '[1:execute] TypeError: boom');
    assert.ok(tb.length > 1, 'the engine stack follows');
  });

  it('shows a progress line and updates it in place', () => {
    const shown = ofType(r.progress, 'display_data').find((d) =>
      /engines done/.test(String((d.data as Record<string, string>)['text/plain'])),
    );
    assert.ok(shown, JSON.stringify(r.progress.iopub));
    const id = (shown.transient as { display_id: string }).display_id;
    const updates = ofType(r.progress, 'update_display_data');
    assert.ok(updates.length > 0);
    assert.ok(updates.every((u) => (u.transient as { display_id: string }).display_id === id));
    assert.match(
      String((updates.at(-1)?.data as Record<string, string>)['text/plain']),
      /^2\/2 engines done/,
    );
  });

  it('--data shows each engine’s latest published data, updated in place', () => {
    assert.equal(r.data.reply.status, 'ok');
    const text = (c: Record<string, unknown>): string =>
      String((c.data as Record<string, string>)['text/plain']);
    const id = (c: Record<string, unknown>): string =>
      (c.transient as { display_id: string }).display_id;
    const shown = ofType(r.data, 'display_data').filter((d) => /^\[data:/.test(text(d)));
    assert.deepEqual(shown.map(text).sort(), ['[data:0] { step: 1 }', '[data:1] { step: 1 }']);
    for (const [engine, display] of shown.map((d) => [text(d)[6], d] as const)) {
      const updates = ofType(r.data, 'update_display_data').filter((u) => id(u) === id(display));
      assert.deepEqual(updates.map(text), [`[data:${engine}] { step: ${Number(engine) + 2} }`]);
    }
  });

  it('--timeout ends the wait with a clear error and leaves the engines usable', () => {
    assert.equal(r.timeout.reply.status, 'error');
    const err = errorOf(r.timeout);
    assert.equal(err.ename, 'TimeoutError');
    assert.match(String(err.evalue), /did not finish within --timeout 1 s/);
    assert.equal(r.afterTimeout.reply.status, 'ok');
    assert.equal(ofType(r.afterTimeout, 'execute_result').length, 2);
  });

  it('an interrupt during a blocking %%px signals the engines and ends the cell', () => {
    assert.equal(r.spin.reply.status, 'error');
    const errors = ofType(r.spin, 'error');
    assert.equal(errors.at(-1)?.ename, 'InterruptedError');
    assert.match(String(errors.at(-1)?.evalue), /engines 0, 1 got SIGINT/);
    assert.equal(r.afterInterrupt.reply.status, 'ok');
    const alive = ofType(r.afterInterrupt, 'execute_result').map(
      (c) => (c.data as Record<string, string>)['text/plain'],
    );
    assert.deepEqual(
      alive.map((t) => t.replace(/^Out\[\d+:\d+\]: /, '')),
      ["'alive'", "'alive'"],
    );
  });

  it('--local also runs the cell in the notebook', () => {
    const out = streamText(r.local);
    assert.match(out, /^ran 5$/m);
    assert.match(out, /^\[stdout:0\] ran 5$/m);
  });

  it('--no-stream --group-outputs engine shows each engine’s output together at the end', () => {
    const streams = ofType(r.grouped, 'stream').map((c) => String(c.text).trim());
    assert.deepEqual(streams, [
      '[stdout:0] out',
      '[stderr:0] err',
      '[stdout:1] out',
      '[stderr:1] err',
    ]);
  });

  it('%pxconfig --targets changes where %px runs', () => {
    assert.match(streamText(r.configTargets), /^targets: 1$/m);
    const engines = ofType(r.onConfigured, 'execute_result').map(
      (c) => (c.metadata as { engine: number }).engine,
    );
    assert.deepEqual(engines, [1]);
  });

  it('code and magics share the client: rc from %cluster start, --out and %pxresult', () => {
    assert.equal(
      (ofType(r.fromCode, 'execute_result')[0].data as Record<string, string>)['text/plain'],
      '[ 1, 4, 9 ]',
    );
    assert.equal(r.noblock.reply.status, 'ok');
    assert.match(
      ofType(r.pxresult, 'execute_result')
        .map((c) => (c.data as Record<string, string>)['text/plain'])
        .join('\n'),
      /Out\[0:\d+\]: 'done later'/,
    );
    assert.equal(
      (ofType(r.awaitOut, 'execute_result')[0].data as Record<string, string>)['text/plain'],
      '2',
    );
    assert.match(streamText(r.status), /engine 0: idle/);
    assert.match(streamText(r.stop), /Stopped the cluster/);
  });

  it('%cluster start --resources gives the engines what tasks ask for', () => {
    assert.equal(r.onGpu.reply.status, 'ok', JSON.stringify(r.onGpu.iopub));
    assert.equal(
      (ofType(r.onGpu, 'execute_result')[0].data as Record<string, string>)['text/plain'],
      'ran where a gpu is',
    );
  });

  it('a Cluster created in a code cell becomes the one %px uses', () => {
    assert.equal(
      (ofType(r.codeCluster, 'execute_result')[0].data as Record<string, string>)['text/plain'],
      'true',
    );
    const out = ofType(r.pxOnCodeCluster, 'execute_result');
    assert.equal(out.length, 1, 'one engine: the new cluster');
    assert.match(streamText(r.stopCodeCluster), /Stopped the cluster/);
  });

  it('%cluster connect uses a running cluster, and %cluster stop only disconnects from it', async () => {
    assert.match(
      streamText(r.connect),
      /^Connected to tcp:\/\/127\.0\.0\.1:\d+ with 1 engine; rc is set/,
    );
    assert.equal(ofType(r.pxOnConnected, 'execute_result').length, 1);
    assert.match(streamText(r.disconnect), /Closed the connection; the cluster keeps running/);
    const rc = await outside.connect();
    assert.deepEqual(rc.ids, [0], 'the outside cluster still runs');
    rc.close();
  });

  it('%autopx runs plain cells on the engines until turned off', () => {
    assert.match(streamText(r.autopxOn), /%autopx enabled/);
    const out = ofType(r.autopxCell, 'execute_result').map(
      (c) => (c.data as Record<string, string>)['text/plain'],
    );
    assert.deepEqual(
      out.map((t) => t.replace(/^Out\[\d+:\d+\]: /, '')),
      ["'number'"],
    );
    assert.match(streamText(r.autopxOff), /%autopx disabled/);
  });
});
