/**
 * The example notebook, run as a newcomer runs it: `jupyter nbconvert --to notebook --execute`
 * on the installed kernelspec, then its outputs are checked.
 */
import { strict as assert } from 'node:assert';
import { useExample, outputText as text } from './kernel-fixture';

describe('example notebook (nbconvert --execute)', function () {
  this.timeout(600_000);
  const cell = useExample('quickstart.ipynb');

  it('%cluster start and %%px show each engine’s output', () => {
    assert.match(text(cell('%cluster start')), /Started a cluster with 2 engines/);
    const px = text(cell('%%px'));
    assert.match(px, /^\[stdout:0\] engine pid \d+ ready$/m);
    assert.match(px, /^\[stdout:1\] engine pid \d+ ready$/m);
    assert.match(text(cell('%px 6 * 7')), /Out\[0:\d+\]: 42[\s\S]*Out\[1:\d+\]: 42/);
  });

  it('views from code: a direct view on both engines, a load-balanced Monte-Carlo π', () => {
    assert.equal(text(cell('const dv')), '2');
    assert.match(text(cell('const samples')), /^pi is about 3\.1\d\n$/);
    assert.match(text(cell('%cluster status')), /engine 0: idle[\s\S]*engine 1: idle/);
    assert.match(text(cell('%cluster stop')), /Stopped the cluster/);
  });
});
