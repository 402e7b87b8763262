import assert from 'node:assert/strict';
import { chart } from '../../bench/chart';
import { markdown, type BenchReport, type Stats } from '../../bench/report';

interface Element {
  name: string;
  attrs: Record<string, string>;
  text: string;
}

/**
 * A strict reader for the XML subset the chart writes: every tag closes in order, attributes are
 * `name="value"`, text has no raw `<` and only the five predefined entities. Returns the elements
 * in document order, each with its direct text; throws where the document is not well-formed.
 */
function readXml(xml: string): Element[] {
  const elements: Element[] = [];
  const open: Element[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  const text = /[^<]*/y;
  let at = 0;
  const checkText = (s: string): void => {
    assert.doesNotMatch(s, /&(?!(amp|lt|gt|quot|apos);)/, `a bare & in ${JSON.stringify(s)}`);
  };
  while (at < xml.length) {
    text.lastIndex = at;
    const t = text.exec(xml)?.[0] ?? '';
    checkText(t);
    if (open.length > 0) open[open.length - 1].text += t;
    else assert.match(t, /^\s*$/, 'text outside the root element');
    at += t.length;
    if (at >= xml.length) break;
    tag.lastIndex = at;
    const m = tag.exec(xml);
    assert.ok(m, `not a well-formed tag at ${at}: ${xml.slice(at, at + 40)}`);
    const [whole, closing, name, attrText, selfClosing] = m;
    at += whole.length;
    if (closing) {
      assert.equal(open.pop()?.name, name, `</${name}> closes another element`);
      continue;
    }
    assert.ok(elements.length === 0 || open.length > 0, 'a second root element');
    const attrs: Record<string, string> = {};
    for (const [, key, value] of attrText.matchAll(/([\w:-]+)="([^"]*)"/g)) {
      assert.equal(attrs[key], undefined, `attribute ${key} twice on <${name}>`);
      checkText(value);
      attrs[key] = value;
    }
    const element = { name, attrs, text: '' };
    elements.push(element);
    if (!selfClosing) open.push(element);
  }
  assert.deepEqual(
    open.map((e) => e.name),
    [],
    'elements left open',
  );
  return elements;
}

const s = (median: number): Stats => ({ median, p90: median, p99: median, n: 10 });

/** Two workloads: ipyparallel everywhere, Dask only on the first, Ray absent. */
const report: BenchReport = {
  date: '2026-12-06T15:00:00.000Z',
  machine: '2 × Test CPU, Node v20',
  command: 'npm run bench -- --quick',
  load: { start: [0.1, 0.2, 0.3], end: [1, 1, 1] },
  quick: true,
  engines: 2,
  workloads: [
    {
      id: 'rtt.lb',
      label: 'round trip, load-balanced',
      unit: 'ms',
      better: 'lower',
      tsparallel: s(1),
      peers: { ipyparallel: s(3), dask: s(12), ray: null },
      ratio: { ipyparallel: 3, dask: 12, ray: null },
    },
    {
      id: 'push.1MB',
      label: 'push 1 MB <& "quoted">',
      unit: 'MB/s',
      better: 'higher',
      tsparallel: s(50),
      peers: { ipyparallel: s(100), dask: null, ray: null },
      ratio: { ipyparallel: 0.5, dask: null, ray: null },
    },
  ],
  absent: { ray: 'no Ray venv <here>' },
  versions: { ipyparallel: '7.1.0', dask: '2022.12.1' },
  floor: { inProcessMs: s(0.1), crossProcessMs: s(0.2), largeHopMBs: s(1000) },
  scale: null,
  targets: [],
};

describe('the benchmark chart', () => {
  const elements = readXml(chart(report));
  const bars = elements.filter((e) => e.name === 'rect' && e.attrs.class === 'bar');
  const x1 = Number(
    elements.find((e) => e.name === 'text' && e.text === '1×' && e.attrs['font-weight'])?.attrs.x,
  );

  it('is one well-formed SVG document', () => {
    assert.equal(elements[0].name, 'svg');
    assert.equal(elements[0].attrs.xmlns, 'http://www.w3.org/2000/svg');
  });

  it('draws one bar per measured ratio, in the peer’s place, from the 1× line', () => {
    assert.deepEqual(
      bars.map((b) => `${b.attrs['data-workload']}/${b.attrs['data-peer']}`),
      ['rtt.lb/ipyparallel', 'rtt.lb/dask', 'push.1MB/ipyparallel'],
    );
    const [ipp3, dask12, ipp05] = bars.map((b) => ({
      x: Number(b.attrs.x),
      width: Number(b.attrs.width),
    }));
    assert.ok(Number.isFinite(x1), 'the 1× line is labelled');
    // Ahead: the bar starts at 1× and goes right; behind: it ends at 1×, to the left.
    assert.equal(ipp3.x, x1);
    assert.equal(dask12.x, x1);
    assert.ok(Math.abs(ipp05.x + ipp05.width - x1) < 0.2);
    // A log scale: 12× is log(12)/log(3) times as long as 3×, and 0.5× as long as 2×.
    assert.ok(Math.abs(dask12.width / ipp3.width - Math.log(12) / Math.log(3)) < 0.02);
    assert.ok(ipp05.width > 0 && ipp05.width < ipp3.width);
  });

  it('marks a ratio a present peer did not measure, and says why a peer is absent', () => {
    const texts = elements.filter((e) => e.name === 'text').map((e) => e.text);
    assert.deepEqual(
      texts.filter((t) => t.endsWith('not measured')),
      ['dask: not measured'],
    );
    assert.ok(texts.includes('ray: absent (no Ray venv &lt;here&gt;)'));
    assert.ok(texts.includes('push 1 MB &lt;&amp; &quot;quoted&quot;&gt;'));
    assert.ok(texts.includes('3.00×') && texts.includes('12.0×') && texts.includes('0.50×'));
  });

  it('is what RESULTS.md shows, with the command and the load average', () => {
    const md = markdown(report, 'chart.svg');
    assert.match(md, /!\[[^\]]+\]\(chart\.svg\)/);
    assert.match(md, /npm run bench -- --quick/);
    assert.match(md, /Load average \(1, 5, 15 min\): 0\.10, 0\.20, 0\.30 at the start/);
    assert.match(md, /\| ray +\| ratio \|/);
    assert.match(md, /\*\*ray\*\* absent \(no Ray venv <here>\)/);
  });
});
