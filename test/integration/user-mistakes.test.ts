import assert from 'node:assert/strict';
import { CompositeError, RemoteError } from '../../protocol/errors';
import { useCluster } from './fixture';

/** The one error of a direct view's single-target execute. */
async function executeError(run: Promise<unknown>): Promise<RemoteError> {
  try {
    await run;
  } catch (e) {
    const error = e instanceof CompositeError ? e.errors[0] : e;
    assert.ok(error instanceof RemoteError, String(error));
    return error;
  }
  assert.fail('the cell ran without an error');
}

describe("users' mistakes in cells", () => {
  const t = useCluster(1);

  it('names the line and column of a syntax error, and runs nothing of the cell', async () => {
    const dv = t.rc.directView(0);
    const e = await executeError(dv.execute('globalThis.ran = true;\nconst b = = 2;').get());
    assert.equal(e.ename, 'SyntaxError');
    assert.match(e.evalue, /cell \d+:2:11: Expression expected\./);
    const [ran] = await dv.execute('typeof ran');
    assert.equal(ran.result, "'undefined'");
  });

  it('reports a type mistake when the cell runs, with the engine traceback', async () => {
    // Cells are not type-checked (see README): the mistake surfaces as the runtime TypeError.
    const e = await executeError(
      t.rc
        .directView(0)
        .execute('const n: number = "text" as any;\nn.toFixed.call(undefined);')
        .get(),
    );
    assert.equal(e.ename, 'TypeError');
    assert.ok(e.traceback.length > 0);
  });
});
