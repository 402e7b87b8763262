/**
 * The kernel process Jupyter starts from the kernelspec `tsparallel kernel install` writes:
 * `node main.js CONNECTION_FILE`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NotebookKernel } from './kernel';
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
void startKernel(connectionFile, version, (tslab) => new NotebookKernel(tslab));
