// Bundles the JupyterLab host: the compiled src/ (build/lib), the CSS of every plugin package,
// the settings schemas and the themes, into build/ which tsparallel_lab.py serves.
import { readdirSync } from 'node:fs';
import process from 'node:process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import webpack from 'webpack';
import { merge } from 'webpack-merge';
import builder from '@jupyterlab/builder';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'build');
const modules = join(here, '..', '..', 'node_modules');
const baseConfig = require('@jupyterlab/builder/lib/webpack.config.base');

const scoped = (scope) => readdirSync(join(modules, scope)).map((name) => `${scope}/${name}`);
const jupyterlab = scoped('@jupyterlab').filter((name) => name !== '@jupyterlab/builder');
const pluginPackages = jupyterlab.filter((name) => name.endsWith('-extension'));
const libraries = jupyterlab.filter((name) => !name.endsWith('-extension'));

// Writes build/schemas/<package>/ and build/style.js (the packages' CSS imports) and returns
// one webpack configuration per theme, which writes build/themes/<package>/index.css.
const themes = builder.Build.ensureAssets({
  packageNames: pluginPackages,
  output: out,
});

// One copy of each core package for the host and every prebuilt extension: a prebuilt
// extension is built expecting the page to provide these (`import: false` in its build).
const shared = Object.fromEntries(
  [...libraries, ...scoped('@lumino'), 'react', 'react-dom', 'yjs'].map((name) => [
    name,
    { singleton: true },
  ]),
);

const host = merge(baseConfig, {
  mode: process.env.NODE_ENV === 'production' ? 'production' : 'development',
  devtool: false,
  // Rebuilds after a change take seconds instead of most of a minute.
  cache: { type: 'filesystem', cacheDirectory: join(modules, '.cache', 'lab-host') },
  entry: { main: [join(out, 'style.js'), join(out, 'lib', 'bootstrap.js')] },
  output: {
    path: join(out, 'static'),
    publicPath: 'auto',
    filename: '[name].js',
    chunkFilename: '[name].[contenthash].js',
    clean: true,
  },
  plugins: [new webpack.container.ModuleFederationPlugin({ name: 'tsparallel_lab_host', shared })],
});

export default [host, ...themes];
