"""Serves the tsparallel JupyterLab host: the page built into build/ by webpack, with
jupyterlab_server's settings, themes, translations and federated-extension APIs, and
jupyter_server's kernels, sessions and contents.

Run with Debian's Python (/usr/bin/python3), which has jupyter_server and jupyterlab_server.
The launcher (cluster/lab-host.ts) passes the listening address, the extension and state
folders as ordinary Jupyter options on the command line.
"""

import os

from jupyterlab_server import LabServerApp
from traitlets import Unicode

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

    # The page, its schemas and themes as the build left them; each can be set on the command line.
    static_dir = Unicode(os.path.join(BUILD, "static")).tag(config=True)
    templates_dir = Unicode(os.path.join(HERE, "templates")).tag(config=True)
    schemas_dir = Unicode(os.path.join(BUILD, "schemas")).tag(config=True)
    themes_dir = Unicode(os.path.join(BUILD, "themes")).tag(config=True)

    def initialize_templates(self):
        if not os.path.exists(os.path.join(self.static_dir, "main.js")):
            raise SystemExit("The JupyterLab host is not built: run `npm run build:lab` first.")
        super().initialize_templates()


def _jupyter_server_extension_points():
    """How jupyter_server finds the app in this module."""
    return [{"module": "tsparallel_lab", "app": TsparallelLab}]


if __name__ == "__main__":
    # jupyter_server finds an extension by its module name, which "__main__" is not: launch the
    # class from this file imported under its own name.
    from tsparallel_lab import TsparallelLab as App

    App.launch_instance()
