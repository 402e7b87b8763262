/** `tsparallel kernel install`: the Jupyter kernel "TypeScript (tsparallel)". */
import type { Command } from 'commander';
import { installKernelSpec } from '../kernel-ext/install';
import { installPlace, withInstallPlace, type InstallFlags } from './install-place';

/** Adds the `kernel` command to `program`. */
export function kernelCommand(program: Command): void {
  withInstallPlace(
    program
      .command('kernel')
      .description('the Jupyter kernel "TypeScript (tsparallel)"')
      .command('install')
      .description('write the kernelspec where Jupyter finds it (per user by default)'),
    'kernels',
  ).action((o: InstallFlags) => {
    const dir = installKernelSpec(installPlace(o));
    process.stdout.write(`installed kernelspec "TypeScript (tsparallel)" in ${dir}\n`);
  });
}
