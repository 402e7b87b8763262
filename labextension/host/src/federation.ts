/**
 * What the host needs to know about webpack module federation: the share scope that the host
 * and every prebuilt extension resolve `@jupyterlab/*` and `@lumino/*` through, and the
 * container a prebuilt extension's `remoteEntry.*.js` defines.
 */

/** Set up by webpack in a bundle built with ModuleFederationPlugin. */
declare const __webpack_init_sharing__: (scope: string) => Promise<void>;
declare const __webpack_share_scopes__: Record<string, unknown>;

/** A prebuilt extension as the server's page config lists it (`federated_extensions`). */
export interface FederatedExtension {
  name: string;
  /** The remote entry file, relative to the extension's folder. */
  load: string;
  /** Exposed module names (`./extension`, `./mimeExtension`, `./style`), when present. */
  extension?: string;
  mimeExtension?: string;
  style?: string;
}

/** A module federation container: `@jupyterlab/builder` names it `_JUPYTERLAB[name]`. */
export interface Container {
  init(shareScope: unknown): Promise<void>;
  get(module: string): Promise<() => unknown>;
}

/** A prebuilt extension whose container has joined the share scope. */
export interface LoadedExtension {
  ext: FederatedExtension;
  container: Container;
}

declare global {
  interface Window {
    _JUPYTERLAB?: Record<string, Container>;
  }
}

/** Prepares the host's share scope; must run before any shared module is imported. */
export async function initSharing(): Promise<void> {
  await __webpack_init_sharing__('default');
}

function loadScript(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = url;
    script.onload = () => resolve();
    script.onerror = () => reject(new Error(`Could not load the extension script ${url}.`));
    document.head.appendChild(script);
  });
}

/**
 * Loads a prebuilt extension's remote entry from `baseUrl` and joins its container to the
 * host's share scope, so the extension uses the host's single copy of each core package.
 */
export async function loadContainer(baseUrl: string, ext: FederatedExtension): Promise<Container> {
  await loadScript(`${baseUrl}${ext.name}/${ext.load}`);
  const container = window._JUPYTERLAB?.[ext.name];
  if (!container) throw new Error(`The extension ${ext.name} did not define its container.`);
  await container.init(__webpack_share_scopes__.default);
  return container;
}
