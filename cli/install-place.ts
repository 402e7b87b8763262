/** `--user`, `--prefix` and `--sys-prefix`, as `jupyter kernelspec install` takes them. */
import { Option, type Command } from 'commander';
import type { InstallPlace } from '../kernel-ext/install';

/** The parsed install-place flags. */
export interface InstallFlags {
  user?: boolean;
  prefix?: string;
  sysPrefix?: boolean;
}

/** Adds the install-place flags to `command`, for a folder under `share/jupyter/`. */
export function withInstallPlace(command: Command, folder: string): Command {
  return command
    .addOption(new Option('--user', 'install for the current user (the default)'))
    .addOption(
      new Option('--prefix <path>', `install under PATH/share/jupyter/${folder}`).conflicts([
        'user',
        'sysPrefix',
      ]),
    )
    .addOption(
      new Option(
        '--sys-prefix',
        `install under share/jupyter/${folder} of the python3 on PATH (its sys.prefix)`,
      ).conflicts('user'),
    );
}

/** Where the flags say to install. */
export function installPlace(o: InstallFlags): InstallPlace {
  return o.prefix !== undefined ? { prefix: o.prefix } : { sysPrefix: o.sysPrefix ?? false };
}
