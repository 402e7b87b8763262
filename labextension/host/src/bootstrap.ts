/**
 * The host page's entry. Shared modules (every `@jupyterlab/*` and `@lumino/*` package) become
 * usable only once the share scope is set up and each prebuilt extension has joined it, so this
 * file imports none of them and loads the application itself with a dynamic import.
 */
import {
  initSharing,
  loadContainer,
  type FederatedExtension,
  type LoadedExtension,
} from './federation';

/** The page config the server writes into the page (`jupyterlab_server`'s LabHandler). */
function pageConfig(): {
  fullLabextensionsUrl: string;
  federated_extensions?: FederatedExtension[];
} {
  const element = document.getElementById('jupyter-config-data');
  return JSON.parse(element?.textContent ?? '{}');
}

async function bootstrap(): Promise<void> {
  await initSharing();
  const config = pageConfig();
  const base = config.fullLabextensionsUrl.replace(/\/?$/, '/');
  // A broken extension must not keep JupyterLab from starting: report it and go on.
  const loaded = await Promise.all(
    (config.federated_extensions ?? []).map(async (ext): Promise<LoadedExtension[]> => {
      try {
        return [{ ext, container: await loadContainer(base, ext) }];
      } catch (error) {
        console.error(`Skipping the extension ${ext.name}:`, error);
        return [];
      }
    }),
  );
  const { main } = await import('./index');
  await main(loaded.flat());
}

void bootstrap();
