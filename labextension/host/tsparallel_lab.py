"""Serves the tsparallel JupyterLab host: the page built into build/ by webpack, with
jupyterlab_server's settings, themes, translations and federated-extension APIs, and
jupyter_server's kernels, sessions and contents.

Run with Debian's Python (/usr/bin/python3), which has jupyter_server and jupyterlab_server.
The launcher (cluster/lab-host.ts) passes the listening address, the extension and state
folders as ordinary Jupyter options on the command line.
"""

import os

from jupyterlab_server import LabServerApp
from traitlets import default

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(HERE, "build")


class TsparallelLab(LabServerApp):
    """JupyterLab assembled from npm packages, in place of the absent `jupyterlab` package."""

    name = "tsparallel_lab"
    app_name = "JupyterLab (tsparallel host)"
    extension_url = "/lab"
    default_url = "/lab"
    # Server extensions enabled on the machine (Debian's nbclassic and others) stay out.
    load_other_extensions = False

    @default("static_dir")
    def _default_static_dir(self):
        return os.path.join(BUILD, "static")

    @default("templates_dir")
    def _default_templates_dir(self):
        return os.path.join(HERE, "templates")

    @default("schemas_dir")
    def _default_schemas_dir(self):
        return os.path.join(BUILD, "schemas")

    @default("themes_dir")
    def _default_themes_dir(self):
        return os.path.join(BUILD, "themes")

    def initialize_templates(self):
        if not os.path.exists(os.path.join(self.static_dir, "main.js")):
            raise SystemExit("The JupyterLab host is not built: run `npm run build:lab` first.")
        super().initialize_templates()

def _jupyter_server_extension_points():
    return [{"module": "tsparallel_lab", "app": TsparallelLab}]


if __name__ == "__main__":
    # jupyter_server finds an extension by its module name, which "__main__" is not: launch the
    # class from this file imported under its own name.
    from tsparallel_lab import TsparallelLab as App

    App.launch_instance()
