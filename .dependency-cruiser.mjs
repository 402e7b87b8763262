// The import check `npm run lint` runs: no cycle between files, and the top-level folders in
// layers, each importing only from itself and the layers below it (so no cycle between folders).
// The README's folder list says what each folder is, in this order.

/** Lowest first. Folders in one layer do not import each other. */
const LAYERS = [
  ['options'], // the option schema, dependency-free
  ['protocol'], // the wire format shared by every process
  ['controller', 'engine', 'client'], // the three process roles, which only share the protocol
  ['cluster'], // starts controllers and engines, and hands out clients
  ['kernel-ext'], // the notebook kernel, on a cluster and its client
  ['cli'], // the entry point of every role
  ['index.ts'], // the package's public surface
  // The browser panel reads only the kernel's comm vocabulary; see `labextension-reads-comm`.
  ['labextension'],
  ['bench', 'examples'], // users of the package
  ['test'], // on top of everything, the benchmark's quick run included
];

const FOLDERS = LAYERS.flat();
const exact = (names) => `^(${names.map((n) => n.replace('.', '\\.')).join('|')})($|/)`;

const layerRules = LAYERS.flatMap((layer, i) =>
  layer.map((folder) => ({
    name: `layer-${folder}`,
    comment: `${folder} may import only itself and ${LAYERS.slice(0, i).flat().join(', ') || 'nothing else'}`,
    severity: 'error',
    from: { path: exact([folder]), pathNot: '^labextension/host/' },
    to: { path: exact(FOLDERS), pathNot: exact([folder, ...LAYERS.slice(0, i).flat()]) },
  })),
);

export default {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'a file reaches itself through its imports (type-only imports count)',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'labextension-reads-comm',
      comment:
        'the panel runs in the browser: of the rest of the tree it reads only the comm messages',
      severity: 'error',
      from: { path: '^labextension/src/' },
      to: { path: exact(FOLDERS), pathNot: '^(labextension/|kernel-ext/comm-messages\\.ts$)' },
    },
    {
      name: 'lab-host-on-top',
      comment: 'the development server of the panel may use anything but tests and benchmarks',
      severity: 'error',
      from: { path: '^labextension/host/' },
      to: { path: exact(['test', 'bench', 'examples']) },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: {
      path: '^(dist|node_modules|[.]venv-(lab|ray)|test-artifacts|labextension/(lib|build))/',
    },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
