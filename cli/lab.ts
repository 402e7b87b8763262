/** `tsparallel lab install`: the JupyterLab extension with the cluster panel. */
import type { Command } from 'commander';
import { installLabExtension } from '../kernel-ext/install';
import { installPlace, withInstallPlace, type InstallFlags } from './install-place';

/** Adds the `lab` command to `program`. */
export function labCommand(program: Command): void {
  withInstallPlace(
    program
      .command('lab')
      .description('the JupyterLab extension with the cluster panel')
      .command('install')
      .description('copy the prebuilt extension where JupyterLab finds it (per user by default)'),
    'labextensions',
  ).action((o: InstallFlags) => {
    const dir = installLabExtension(installPlace(o));
    process.stdout.write(
      `installed the JupyterLab extension "tsparallel" in ${dir}; reload JupyterLab to see the panel\n`,
    );
  });
}
