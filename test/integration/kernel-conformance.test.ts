/**
 * Debian's jupyter_kernel_test (`jupyter_kernel_test.KernelTests`) against the installed
 * kernelspec; each of its checks for a feature the kernel supports is one test here.
 */
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { installKernel, PYTHON, ROOT, run, type KernelEnv } from './kernel-fixture';

/** The KernelTests checks that apply (history, pager and clear_output are not offered). */
const SUPPORTED = [
  'kernel_info',
  'execute_stdout',
  'execute_stderr',
  'execute_result',
  'display_data',
  'error',
  'completion',
  'is_complete',
  'inspect',
];

describe('kernel conformance (jupyter_kernel_test)', function () {
  this.timeout(300_000);
  let k: KernelEnv;
  let report = '';

  before(async () => {
    k = await installKernel();
    // unittest reports on stderr and exits non-zero when a check fails; the report is what counts.
    report = await run(
      '/bin/sh',
      ['-c', `${PYTHON} ${join(ROOT, 'test', 'kernel', 'conformance.py')} 2>&1 || true`],
      { env: k.env, cwd: ROOT },
    );
  });
  after(() => k?.cleanup());

  for (const name of SUPPORTED) {
    it(`test_${name}`, () => {
      const lines = report.split('\n').filter((l) => l.includes(`test_${name} (`));
      assert.ok(lines.length > 0, `test_${name} did not run:\n${report}`);
      const failed = lines.some((l) => /\.\.\. (FAIL|ERROR)$/.test(l));
      const passed = lines.some((l) => /\.\.\. ok$/.test(l));
      assert.ok(passed && !failed, `test_${name} failed:\n${report}`);
    });
  }
});
