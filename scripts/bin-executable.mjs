// Marks every command in package.json's "bin" executable. tsc writes files without the run bit,
// and a rebuild replaces the ones npm marked at install, so `npx tsparallel` would be refused.
import { chmodSync, readFileSync } from 'node:fs';

const { bin = {} } = JSON.parse(readFileSync('package.json', 'utf8'));
for (const file of typeof bin === 'string' ? [bin] : Object.values(bin)) chmodSync(file, 0o755);
