/**
 * The kernel process Jupyter starts from the kernelspec `tsparallel kernel install` writes:
 * `node main.js CONNECTION_FILE`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NotebookKernel } from './kernel';
import { watchParent } from './parent-watch';
import { startKernel } from './tslab';

const [connectionFile] = process.argv.slice(2);
if (!connectionFile) {
  process.stderr.write(
    'usage: node main.js CONNECTION_FILE (Jupyter passes it; see tsparallel kernel install)\n',
  );
  process.exit(2);
}
const { version } = JSON.parse(
  readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8'),
) as {
  version: string;
};
let kernel: NotebookKernel | undefined;
void startKernel(connectionFile, version, (tslab) => (kernel = new NotebookKernel(tslab)));
// Jupyter killed outright cannot shut the kernel down: it stops its cluster and ends by itself.
watchParent(async () => kernel?.close());
