/**
 * Starts JupyterLab with the core plugin packages the host is built with and the prebuilt
 * extensions the bootstrap loaded.
 */
import { JupyterLab } from '@jupyterlab/application';
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import type { Container, LoadedExtension } from './federation';

/** Every `@jupyterlab/*-extension` package in package.json, so the schemas built match. */
const corePlugins = [
  import('@jupyterlab/application-extension'),
  import('@jupyterlab/apputils-extension'),
  import('@jupyterlab/codemirror-extension'),
  import('@jupyterlab/completer-extension'),
  import('@jupyterlab/docmanager-extension'),
  import('@jupyterlab/filebrowser-extension'),
  import('@jupyterlab/mainmenu-extension'),
  import('@jupyterlab/markedparser-extension'),
  import('@jupyterlab/notebook-extension'),
  import('@jupyterlab/rendermime-extension'),
  import('@jupyterlab/running-extension'),
  import('@jupyterlab/shortcuts-extension'),
  import('@jupyterlab/statusbar-extension'),
  import('@jupyterlab/theme-dark-extension'),
  import('@jupyterlab/theme-light-extension'),
  import('@jupyterlab/tooltip-extension'),
  import('@jupyterlab/translation-extension'),
  import('@jupyterlab/ui-components-extension'),
];

/**
 * Plugins not started: they need packages the host leaves out (search, table of contents,
 * language servers, metadata forms, consoles, file editors) or the news API of the Python
 * `jupyterlab` package, which jupyterlab_server lacks.
 */
const ignorePlugins = [
  '@jupyterlab/notebook-extension:search',
  '@jupyterlab/notebook-extension:toc',
  '@jupyterlab/notebook-extension:language-server',
  '@jupyterlab/notebook-extension:update-raw-mimetype',
  '@jupyterlab/tooltip-extension:consoles',
  '@jupyterlab/tooltip-extension:files',
  '@jupyterlab/apputils-extension:announcements',
];

type PluginModule = JupyterLab.IPluginModule;

/** Gets an exposed module from a prebuilt extension's container and evaluates it. */
async function exposed<T>(container: Container, name: string): Promise<T> {
  const factory = await container.get(name);
  return factory() as T;
}

/** Builds the application, registers every plugin, starts it, and exposes it for tests. */
export async function main(extensions: LoadedExtension[]): Promise<void> {
  const plugins: PluginModule[] = await Promise.all(corePlugins);
  const mimeExtensions: IRenderMime.IExtensionModule[] = [];
  for (const { ext, container } of extensions) {
    if (ext.style) await exposed(container, ext.style);
    if (ext.extension) plugins.push(await exposed<PluginModule>(container, ext.extension));
    if (ext.mimeExtension) {
      mimeExtensions.push(
        await exposed<IRenderMime.IExtensionModule>(container, ext.mimeExtension),
      );
    }
  }
  const lab = new JupyterLab({ mimeExtensions });
  lab.registerPluginModules(plugins);
  await lab.start({ ignorePlugins });
  await lab.restored;
  // The end-to-end test opens notebooks through the application's commands.
  (window as unknown as { jupyterapp: JupyterLab }).jupyterapp = lab;
}
