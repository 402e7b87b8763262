/**
 * The tsparallel JupyterLab extension: a left-sidebar panel showing the cluster of the current
 * notebook's tsparallel kernel (engines, views, tasks, a task stream), and the command
 * "Show Parallel Cluster Panel".
 */
import {
  ILayoutRestorer,
  type JupyterFrontEnd,
  type JupyterFrontEndPlugin,
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
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
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
  ) => {
    const model = new ClusterModel();
    const panel = new ClusterPanel(model);
    new KernelFollower(tracker, model);
    app.shell.add(panel, 'left', { rank: 700 });
    restorer?.add(panel, panel.id);
    app.commands.addCommand(OPEN_COMMAND, {
      label: 'Show Parallel Cluster Panel',
      caption: 'Open the sidebar panel of the notebook kernel’s tsparallel cluster',
      icon: panel.title.icon,
      execute: () => app.shell.activateById(panel.id),
    });
    palette?.addItem({ command: OPEN_COMMAND, category: 'Parallel' });
  },
};

export default plugin;
