"""The benchmark grid on ipyparallel, dask.distributed or Ray, for bench/run.ts.

Usage: PYTHON bench/peers.py ipyparallel|dask|ray SCRATCH_DIR < grid.json > results.json

Reads the grid (a JSON list of workloads, see bench/grid.ts) on stdin and writes
{"absent": reason} when the system cannot be imported, else {"version": ..., "results":
{workload id: [samples]}} on stdout. Everything runs on 127.0.0.1 with the grid's engine count.
A workload a system has no method for is left out of its results (reported as not measured).
SCRATCH_DIR is a directory the system may keep its files in; bench/run.ts removes it.
"""

import json
import os
import signal
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


def dag_deps(i):
    """The twin of bench/grid.ts's dagDeps: the tasks task i of the graph workload takes."""
    return sorted({(i * 2654435761 + j * 40503) % i for j in range(i % 4)})


def dag_node(*xs):
    return (1 + sum(xs)) % 1000


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


def z_column(frame):
    # The batches workload's work, as bench/tsparallel.ts's zColumn: z = sqrt(x) * y + sin(x).
    import numpy
    import pandas

    return pandas.DataFrame({"z": numpy.sqrt(frame.x) * frame.y + numpy.sin(frame.x)})


def frame_of(rows):
    import numpy
    import pandas

    i = numpy.arange(rows)
    return pandas.DataFrame({"x": i / 7, "y": (i % 1000).astype(numpy.int32)})


class System:
    """What every peer shares: how a transfer and a CPU sample are set up around its methods."""

    spin_n = None

    def moved(self, kind, nbytes):
        data = numpy_arange(nbytes)
        if kind in ("pull", "gather"):
            # Something to pull or gather: put it there first, untimed.
            self.stage(kind, data)
        return self.transfer(kind, data)

    def stage(self, kind, data):
        self.transfer("push" if kind == "pull" else "scatter", data)

    def timed_cpu(self, engines, tasks, ms):
        self.spin_n = self.spin_n or calibrate(ms)
        return self.cpu(engines, tasks, self.spin_n)


def numpy_arange(nbytes):
    import numpy

    return numpy.arange(nbytes // 8, dtype=numpy.float64)


class Ipp(System):
    name = "ipyparallel"

    def __init__(self, scratch):
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


class Dask(System):
    name = "dask"

    def __init__(self, scratch):
        import distributed

        self.distributed = distributed
        self.version = distributed.__version__
        self.cluster = None
        try:
            import dask.dataframe

            self.dd = dask.dataframe
        except ImportError:
            # Its DataFrames need pandas; without it the table workload is not measured.
            self.batches = None

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

    def graph(self, n):
        t = now()
        futures = []
        for i in range(n):
            args = [futures[d] for d in dag_deps(i)]
            futures.append(self.client.submit(dag_node, *args, pure=False))
        self.client.gather(futures)
        return n / (now() - t)

    def batches(self, rows, batches, where):
        frame = frame_of(rows)
        t = now()
        if where == "local":
            z_column(frame)
        else:
            parts = self.dd.from_pandas(frame, npartitions=batches)
            parts.map_partitions(z_column, meta={"z": "f8"}).compute()
        return now() - t


class Ray(System):
    """Ray has no engines to address: a task goes from the driver (its owner) straight to a worker
    the local raylet leases, so both round trips are one task; push is `ray.put` then a task that
    uses the value, pull is `ray.get` of a value a task returned (from the shared-memory object
    store, without a copy); "execute" is one tiny task per CPU; one engine for the CPU workload
    is tasks that each take both CPUs."""

    name = "ray"

    def __init__(self, scratch):
        import ray

        self.ray = ray
        self.version = ray.__version__
        self.scratch = scratch
        self.started = False
        remote = ray.remote
        self.tiny, self.tiny_x, self.tiny_chunk = remote(tiny), remote(tiny_x), remote(tiny_chunk)
        self.spin, self.use, self.make = remote(spin), remote(nbytes_of), remote(numpy_arange)
        self.dag_node = remote(dag_node)

    def start(self):
        import logging

        self.started = True
        self.ray.init(
            num_cpus=ENGINES,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=self.scratch,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )

    def stop(self):
        if self.started:
            self.ray.shutdown()
            self.started = False

    def rtt(self, mode):
        t = now()
        self.ray.get(self.tiny.remote())
        return (now() - t) * 1000

    def apply(self, n):
        t = now()
        self.ray.get([self.tiny.remote() for _ in range(n)])
        return n / (now() - t)

    def map(self, n, chunk):
        t = now()
        if chunk == 1:
            refs = [self.tiny_x.remote(i) for i in range(n)]
        else:
            chunks = [list(range(i, min(i + chunk, n))) for i in range(0, n, chunk)]
            refs = [self.tiny_chunk.remote(c) for c in chunks]
        self.ray.get(refs)
        return n / (now() - t)

    def execute(self):
        t = now()
        self.ray.get([self.tiny.remote() for _ in range(ENGINES)])
        return (now() - t) * 1000

    def stage(self, kind, data):
        # Values that tasks returned, already in the object store: one, or the two halves.
        sizes = [data.nbytes] if kind == "pull" else [data.nbytes // 2] * 2
        self.held = [self.make.remote(b) for b in sizes]
        self.ray.wait(self.held, num_returns=len(self.held))

    def transfer(self, kind, data):
        ray = self.ray
        t = now()
        if kind in ("push", "scatter"):
            parts = [data] if kind == "push" else [data[: len(data) // 2], data[len(data) // 2 :]]
            ray.get([self.use.remote(ray.put(p)) for p in parts])
        else:
            ray.get(self.held)
        took = now() - t
        self.held = None
        return data.nbytes / MB / took

    def cpu(self, engines, tasks, n):
        one = self.spin.options(num_cpus=ENGINES // engines)
        t = now()
        self.ray.get([one.remote(n) for _ in range(tasks)])
        return now() - t

    def graph(self, n):
        t = now()
        refs = []
        for i in range(n):
            refs.append(self.dag_node.remote(*[refs[d] for d in dag_deps(i)]))
        self.ray.get(refs)
        return n / (now() - t)


def nbytes_of(a):
    return a.nbytes


SYSTEMS = {"ipyparallel": Ipp, "dask": Dask, "ray": Ray}

# How each kind of workload is sampled: the system's method and its arguments from the
# workload's params. A new workload is one row here (and the method on the systems that have
# it); a system without the method leaves the workload out of its results.
WORKLOADS = {
    "rtt": ("rtt", lambda p: (p["mode"],)),
    "apply": ("apply", lambda p: (p["n"],)),
    "map": ("map", lambda p: (p["n"], p["chunk"])),
    "execute": ("execute", lambda p: ()),
    "push": ("moved", lambda p: ("push", p["bytes"])),
    "pull": ("moved", lambda p: ("pull", p["bytes"])),
    "scatter": ("moved", lambda p: ("scatter", p["bytes"])),
    "gather": ("moved", lambda p: ("gather", p["bytes"])),
    "cpu": ("timed_cpu", lambda p: (p["engines"], p["tasks"], p["ms"])),
    "batches": ("batches", lambda p: (p["rows"], p["batches"], p["where"])),
    "graph": ("graph", lambda p: (p["n"],)),
}


def run(system, grid):
    results = {}
    system.start()
    try:
        for w in grid:
            p = w["params"]
            if p["kind"] == "coldstart":
                continue
            method, args = WORKLOADS[p["kind"]]
            sample = getattr(system, method, None)
            if sample is None:
                continue
            # Untimed first, as bench/grid.ts's `warmupSeconds` says.
            end = now() + w.get("warmupSeconds", 0)
            while now() < end:
                sample(*args(p))
            results[w["id"]] = [sample(*args(p)) for _ in range(w["reps"])]
            print(f"{system.name}: {w['id']} done", file=sys.stderr)
    finally:
        system.stop()
    cold = next((w for w in grid if w["params"]["kind"] == "coldstart"), None)
    if cold:
        samples = []
        for _ in range(cold["reps"]):
            t = now()
            system.start()
            try:
                system.rtt("direct")
                samples.append(now() - t)
            finally:
                system.stop()
        results[cold["id"]] = samples
    return results


def main():
    which, scratch = sys.argv[1], sys.argv[2]
    grid = json.load(sys.stdin)
    # A SIGTERM unwinds like an error, through the `finally` that stops the system.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        system = SYSTEMS[which](scratch)
    except ImportError as e:
        json.dump({"absent": f"{which} is not installed ({e})"}, sys.stdout)
        return
    results = run(system, grid)
    json.dump({"version": system.version, "results": results}, sys.stdout)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
