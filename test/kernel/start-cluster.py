"""Starts a cluster in a tsparallel kernel with `%cluster start -n 2`, as a notebook user does.

With a connection file argument it uses that kernel (one a Jupyter server started) and exits;
without, it starts the kernel itself with jupyter_client's KernelManager, as Jupyter does, and
stays its parent until it is killed; with --busy CODE it then leaves the kernel running CODE,
which prints before it keeps the kernel busy. Either way it prints one JSON line once the
cluster runs (and CODE has printed):
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
    args = sys.argv[1:]
    busy = None
    if args[:1] == ["--busy"]:
        busy, args = args[1], args[2:]
    if args:
        kc = BlockingKernelClient(connection_file=args[0])
        kc.load_connection_file()
        kc.start_channels()
        kc.wait_for_ready(timeout=TIMEOUT)
    else:
        _, kc = start_new_kernel(kernel_name="tsparallel", startup_timeout=TIMEOUT)
    run(kc, "%cluster start -n 2")
    pids = json.loads(run(kc, PIDS))
    if busy:
        msg_id = kc.execute(busy)
        while True:
            msg = kc.get_iopub_msg(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                break
    print(json.dumps(pids), flush=True)
    if args:
        kc.stop_channels()
        return
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
