/**
 * The benchmark as a picture: for each workload, how many times better tsparallel is than each
 * peer, as horizontal bars on a log scale that start at the 1× line (right of it: tsparallel is
 * ahead). Written as SVG text, so no browser or drawing library is needed.
 */
import { fmt, PEERS, type BenchReport, type Peer } from './report';

const COLOURS: Record<Peer, string> = { ipyparallel: '#4e79a7', dask: '#f28e2b', ray: '#59a14f' };
const WIDTH = 920;
const LABEL_WIDTH = 250;
const PLOT = { left: LABEL_WIDTH + 20, right: WIDTH - 60 };
const BAR = 11;
const GROUP_GAP = 9;
const TOP = 78;

const escape = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Decades of the log axis: from below the smallest ratio to above the largest, 1× included. */
function domain(ratios: number[]): [number, number] {
  const lo = Math.floor(Math.log10(Math.min(0.5, ...ratios)));
  const hi = Math.ceil(Math.log10(Math.max(2, ...ratios)));
  return [lo, hi];
}

/** The chart of `r` as an SVG document. */
export function chart(r: BenchReport): string {
  const ratios = r.workloads.flatMap((w) =>
    PEERS.map((p) => w.ratio[p]).filter((v): v is number => v !== null && v > 0),
  );
  const [lo, hi] = domain(ratios);
  const x = (v: number): number =>
    PLOT.left + ((Math.log10(v) - lo) / (hi - lo)) * (PLOT.right - PLOT.left);
  const groupHeight = PEERS.length * BAR + GROUP_GAP;
  const plotBottom = TOP + r.workloads.length * groupHeight;
  const height = plotBottom + 40;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
      `viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">How many times better tsparallel is, ` +
      `per workload (log scale; right of 1×: tsparallel ahead)</text>`,
    `<text x="10" y="37" fill="#555555">${escape(
      `${r.quick ? 'quick grid, ' : ''}${r.engines} engines each, ${r.date.slice(0, 16).replace('T', ' ')} UTC, ${r.machine}`,
    )}</text>`,
  ];
  // Legend: one swatch per peer, with its version or why it is absent.
  let lx = 10;
  for (const p of PEERS) {
    const what =
      r.absent[p] !== undefined ? `${p}: absent (${r.absent[p]})` : `${p} ${r.versions[p] ?? ''}`;
    const text = what.length > 60 ? `${what.slice(0, 59)}…` : what;
    out.push(
      `<rect x="${lx}" y="47" width="12" height="12" fill="${COLOURS[p]}"/>`,
      `<text x="${lx + 16}" y="57">${escape(text)}</text>`,
    );
    lx += 30 + text.length * 6.5;
  }
  // Grid: a line and a label at 1, 2 and 5 of each decade.
  for (let d = lo; d <= hi; d++) {
    for (const m of d === hi ? [1] : [1, 2, 5]) {
      const v = m * 10 ** d;
      const gx = x(v).toFixed(1);
      out.push(
        `<line x1="${gx}" y1="${TOP - 6}" x2="${gx}" y2="${plotBottom}" stroke="${m === 1 ? '#bbbbbb' : '#e6e6e6'}"/>`,
        `<text x="${gx}" y="${plotBottom + 14}" text-anchor="middle" fill="#555555">${Number(v.toPrecision(1))}×</text>`,
      );
    }
  }
  r.workloads.forEach((w, i) => {
    const gy = TOP + i * groupHeight;
    out.push(
      `<text x="${LABEL_WIDTH}" y="${gy + (PEERS.length * BAR) / 2 + 4}" text-anchor="end">${escape(w.label)}</text>`,
    );
    PEERS.forEach((p, j) => {
      const v = w.ratio[p];
      const by = gy + j * BAR;
      if (v === null || v <= 0) {
        // An absent peer's slot stays empty (the legend says why); a gap in a present one is marked.
        if (r.absent[p] !== undefined) return;
        out.push(
          `<text class="missing" x="${(x(1) + 4).toFixed(1)}" y="${by + BAR - 2}" fill="#999999" font-size="9">${p}: not measured</text>`,
        );
        return;
      }
      const [a, b] = [x(Math.min(v, 1)), x(Math.max(v, 1))];
      const label = v >= 1 ? { x: b + 3, anchor: 'start' } : { x: a - 3, anchor: 'end' };
      out.push(
        `<rect class="bar" data-peer="${p}" data-workload="${escape(w.id)}" x="${a.toFixed(1)}" y="${by}" ` +
          `width="${Math.max(b - a, 1).toFixed(1)}" height="${BAR - 1}" fill="${COLOURS[p]}">` +
          `<title>${escape(`${w.label}, ${p}: ${fmt(v)}×`)}</title></rect>`,
        `<text x="${label.x.toFixed(1)}" y="${by + BAR - 2}" text-anchor="${label.anchor}" font-size="9">${fmt(v)}×</text>`,
      );
    });
  });
  out.push(
    `<line x1="${x(1).toFixed(1)}" y1="${TOP - 10}" x2="${x(1).toFixed(1)}" y2="${plotBottom}" stroke="#000000" stroke-width="1.5"/>`,
    `<text x="${x(1).toFixed(1)}" y="${TOP - 12}" text-anchor="middle" font-weight="bold">1×</text>`,
    `<text x="${(PLOT.left + PLOT.right) / 2}" y="${plotBottom + 32}" text-anchor="middle" fill="#555555">` +
      `ratio tsparallel / peer (time: peer's ÷ tsparallel's; throughput: tsparallel's ÷ peer's)</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}
