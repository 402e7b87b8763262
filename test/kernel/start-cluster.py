"""Starts a cluster in a tsparallel kernel with `%cluster start -n 2`, as a notebook user does.

With a connection file argument it uses that kernel (one a Jupyter server started) and exits;
without, it starts the kernel itself with jupyter_client's KernelManager, as Jupyter does, and
stays its parent until it is killed. Either way it prints one JSON line once the cluster runs:
{"kernel": pid, "controller": pid, "engines": [pid, pid], "stateFile": path}.
"""
import json
import sys
import time

from jupyter_client import BlockingKernelClient
from jupyter_client.manager import start_new_kernel

TIMEOUT = 120
PIDS = (
    'console.log(JSON.stringify({ kernel: process.pid, stateFile: cluster.stateFile, '
    'controller: JSON.parse(require("fs").readFileSync(cluster.stateFile, "utf8")).controllerPid, '
    'engines: rc.engineInfo.map((e) => e.pid) }))'
)


def run(kc, code):
    """Runs a cell; returns what it printed, failing if the cell failed."""
    printed = []

    def output(msg):
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])

    reply = kc.execute_interactive(code, timeout=TIMEOUT, output_hook=output)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"{code!r} failed: {reply['content']}")
    return "".join(printed)


def main():
    if len(sys.argv) > 1:
        kc = BlockingKernelClient(connection_file=sys.argv[1])
        kc.load_connection_file()
        kc.start_channels()
        kc.wait_for_ready(timeout=TIMEOUT)
    else:
        _, kc = start_new_kernel(kernel_name="tsparallel", startup_timeout=TIMEOUT)
    run(kc, "%cluster start -n 2")
    print(json.dumps(json.loads(run(kc, PIDS))), flush=True)
    if len(sys.argv) > 1:
        kc.stop_channels()
        return
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
