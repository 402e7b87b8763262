/**
 * The tsparallel JupyterLab extension: a left-sidebar panel showing the cluster of the current
 * notebook's tsparallel kernel (engines, maps, views, tasks, a task stream), the command
 * "Show Parallel Cluster Panel" and its launcher card "Parallel Cluster".
 */
import {
  ILayoutRestorer,
  type JupyterFrontEnd,
  type JupyterFrontEndPlugin,
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { INotebookTracker } from '@jupyterlab/notebook';
import { KernelFollower } from './connection';
import { ClusterModel } from './model';
import { ClusterPanel } from './panel';

/** The palette command that shows the panel. */
export const OPEN_COMMAND = 'tsparallel:open-panel';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'tsparallel:panel',
  description: 'The parallel cluster panel of the tsparallel kernel.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer, ILauncher],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    launcher: ILauncher | null,
  ) => {
    const model = new ClusterModel();
    const panel = new ClusterPanel(model);
    new KernelFollower(tracker, model);
    app.shell.add(panel, 'left', { rank: 700 });
    restorer?.add(panel, panel.id);
    app.commands.addCommand(OPEN_COMMAND, {
      label: (args) => (args.isLauncher ? 'Parallel Cluster' : 'Show Parallel Cluster Panel'),
      caption: 'Open the sidebar panel of the notebook kernel’s tsparallel cluster',
      icon: panel.title.icon,
      execute: () => app.shell.activateById(panel.id),
    });
    palette?.addItem({ command: OPEN_COMMAND, category: 'Parallel' });
    launcher?.add({
      command: OPEN_COMMAND,
      args: { isLauncher: true },
      category: 'Other',
      rank: 0,
    });
  },
};

export default plugin;
