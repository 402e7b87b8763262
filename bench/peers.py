"""The benchmark grid on ipyparallel or dask.distributed, for bench/run.ts.

Usage: /usr/bin/python3 bench/peers.py ipyparallel|dask < grid.json > results.json

Reads the grid (a JSON list of workloads, see bench/grid.ts) on stdin and writes
{"absent": reason} when the system cannot be imported, else {"version": ..., "results":
{workload id: [samples]}} on stdout. Everything runs on 127.0.0.1 with the grid's engine count.
"""

import json
import os
import sys
import time

ENGINES = 2
MB = 1024 * 1024


def tiny():
    return 1


def tiny_x(x):
    return x


def tiny_chunk(xs):
    return [x for x in xs]


def spin(n):
    # Pure CPU: a fixed amount of work, calibrated on this machine to about 50 ms.
    s = 0
    for i in range(n):
        s += i * i
    return s


def calibrate(ms):
    n = 100_000
    while True:
        t = time.perf_counter()
        spin(n)
        took = time.perf_counter() - t
        if took > 0.02:
            return int(n * ms / 1000 / took)
        n *= 2


def now():
    return time.perf_counter()


class Ipp:
    name = "ipyparallel"

    def __init__(self):
        import ipyparallel

        self.ipp = ipyparallel
        self.version = ipyparallel.__version__
        self.cluster = None

    def start(self):
        self.cluster = self.ipp.Cluster(n=ENGINES, controller_ip="127.0.0.1", log_level=40)
        self.rc = self.cluster.start_and_connect_sync()
        self.rc.wait_for_engines(ENGINES, timeout=120)
        self.dv = self.rc[:]
        self.lv = self.rc.load_balanced_view()

    def stop(self):
        if self.cluster is not None:
            self.rc.close()
            self.cluster.stop_cluster_sync()
            self.cluster = None

    def rtt(self, mode):
        view = self.rc[0] if mode == "direct" else self.lv
        t = now()
        view.apply_sync(tiny)
        return (now() - t) * 1000

    def apply(self, n):
        t = now()
        ars = [self.lv.apply_async(tiny) for _ in range(n)]
        for ar in ars:
            ar.get()
        return n / (now() - t)

    def map(self, n, chunk):
        t = now()
        self.lv.map_sync(tiny_x, range(n), chunksize=chunk)
        return n / (now() - t)

    def execute(self):
        t = now()
        self.dv.execute("a = 1", block=True)
        return (now() - t) * 1000

    def transfer(self, kind, data):
        one = self.rc[0]
        t = now()
        if kind == "push":
            one.push({"a": data}, block=True)
        elif kind == "pull":
            one.pull("a", block=True)
        elif kind == "scatter":
            self.dv.scatter("a", data, block=True)
        else:
            self.dv.gather("a", block=True)
        return data.nbytes / MB / (now() - t)

    def cpu(self, engines, tasks, n):
        view = self.rc.load_balanced_view(list(range(engines)))
        t = now()
        view.map_sync(spin, [n] * tasks, chunksize=1)
        return now() - t


class Dask:
    name = "dask"

    def __init__(self):
        import distributed

        self.distributed = distributed
        self.version = distributed.__version__
        self.cluster = None

    def start(self):
        d = self.distributed
        self.cluster = d.LocalCluster(
            n_workers=ENGINES,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        self.client = d.Client(self.cluster)
        self.client.wait_for_workers(ENGINES)
        self.workers = sorted(self.client.scheduler_info()["workers"])

    def stop(self):
        if self.cluster is not None:
            self.client.close()
            self.cluster.close()
            self.cluster = None

    def rtt(self, mode):
        # Dask has no direct view; "direct" pins the task to one worker.
        kw = {"workers": [self.workers[0]]} if mode == "direct" else {}
        t = now()
        self.client.submit(tiny, pure=False, **kw).result()
        return (now() - t) * 1000

    def apply(self, n):
        t = now()
        futures = [self.client.submit(tiny, pure=False) for _ in range(n)]
        self.client.gather(futures)
        return n / (now() - t)

    def map(self, n, chunk):
        t = now()
        if chunk == 1:
            futures = self.client.map(tiny_x, range(n), pure=False)
        else:
            chunks = [list(range(i, min(i + chunk, n))) for i in range(0, n, chunk)]
            futures = self.client.map(tiny_chunk, chunks, pure=False)
        self.client.gather(futures)
        return n / (now() - t)

    def execute(self):
        # The nearest thing: run a one-line function on every worker.
        t = now()
        self.client.run(tiny)
        return (now() - t) * 1000

    def transfer(self, kind, data):
        # Push = scatter to one worker, pull = gather its value back; scatter/gather split
        # the array across the workers.
        t = now()
        if kind == "push":
            self.held = self.client.scatter(data, workers=[self.workers[0]], direct=True)
        elif kind == "pull":
            self.client.gather(self.held, direct=True)
        elif kind == "scatter":
            half = len(data) // 2
            self.parts = self.client.scatter([data[:half], data[half:]], direct=True)
        else:
            self.client.gather(self.parts, direct=True)
        return data.nbytes / MB / (now() - t)

    def cpu(self, engines, tasks, n):
        futures = self.client.map(
            spin, [n] * tasks, pure=False, workers=self.workers[:engines]
        )
        t = now()
        self.client.gather(futures)
        return now() - t


def run(system, grid):
    import numpy

    results = {}
    spin_n = None
    system.start()
    try:
        for w in grid:
            p = w["params"]
            kind = p["kind"]
            reps = w["reps"]
            samples = []
            if kind == "coldstart":
                continue
            for _ in range(reps):
                if kind == "rtt":
                    samples.append(system.rtt(p["mode"]))
                elif kind == "apply":
                    samples.append(system.apply(p["n"]))
                elif kind == "map":
                    samples.append(system.map(p["n"], p["chunk"]))
                elif kind == "execute":
                    samples.append(system.execute())
                elif kind in ("push", "pull", "scatter", "gather"):
                    data = numpy.arange(p["bytes"] // 8, dtype=numpy.float64)
                    if kind in ("pull", "gather"):
                        # Something to pull or gather: put it there first, untimed.
                        system.transfer("push" if kind == "pull" else "scatter", data)
                    samples.append(system.transfer(kind, data))
                elif kind == "cpu":
                    spin_n = spin_n or calibrate(p["ms"])
                    samples.append(system.cpu(p["engines"], p["tasks"], spin_n))
            results[w["id"]] = samples
            print(f"{system.name}: {w['id']} done", file=sys.stderr)
    finally:
        system.stop()
    cold = next((w for w in grid if w["params"]["kind"] == "coldstart"), None)
    if cold:
        samples = []
        for _ in range(cold["reps"]):
            t = now()
            system.start()
            system.rtt("direct")
            samples.append(now() - t)
            system.stop()
        results[cold["id"]] = samples
    return results


def main():
    which = sys.argv[1]
    grid = json.load(sys.stdin)
    try:
        system = Ipp() if which == "ipyparallel" else Dask()
    except ImportError as e:
        json.dump({"absent": f"{which} is not installed ({e})"}, sys.stdout)
        return
    results = run(system, grid)
    json.dump({"version": system.version, "results": results}, sys.stdout)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
