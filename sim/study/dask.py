"""Run studies on a Dask cluster (``dask.distributed``): an executor for
:func:`cvj.study.compare`.

Every (variant, replication) of a study is one Dask task,
``cvj.study.runner.run_task(study_json, variant, replication)``: pure, keyed random
numbers, so a run gives the same tables on any worker, and a study on a cluster gives
the same tables as a local one. The tasks return Arrow tables; the client (the process
that calls :func:`cvj.study.compare`) writes each run's partition as it arrives (see
:mod:`cvj.study.output`), so workers need this package but no access to the output.

::

    import cvj.study
    res = cvj.study.compare("study.toml", scheduler="tcp://10.0.0.5:8786", out="studies/x")
    res = cvj.study.compare("study.toml", dask_workers=4, out="studies/x", resume=True)  # a LocalCluster

    from cvj.study.dask import dask_executor
    with dask_executor("tcp://10.0.0.5:8786") as ex:                    # or workers=4
        print(ex.describe())
        res = cvj.study.compare(study, executor=ex, out="studies/x")

Failures: a task that raises is run again up to ``retries`` times (Dask's
``Client.submit(retries=)``); a task whose worker dies (killed, out of memory, lost
machine) is moved to another worker by the scheduler without counting against
``retries`` (the scheduler gives up on a task after its
``distributed.scheduler.allowed-failures`` workers, default 3, died running it).

Dask is imported on first use, and :mod:`cvj.study.runner` imports this module only
for a Dask run: ``cvj`` without Dask options never loads it.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
from collections.abc import Iterator

from ..errors import ClusterError
from ..version import __version__

DEFAULT_RETRIES = 2
DEFAULT_TIMEOUT = 30.0


def _on_worker(fn, threads, version, host_slots, *args):
    """A task as it runs on a worker: the same cvj version as the client, ``threads``
    kernel threads (None: its machine's cores shared out among the task slots of the
    workers on that machine, ``host_slots``)."""
    from ..version import __version__ as here

    if here != version:
        raise RuntimeError(f"this worker has cvj {here}, the client cvj {version}: install the same version everywhere")
    from .. import kernels
    from ..engine import use_threads

    if threads is None:
        threads = _fair_share(host_slots)
    with use_threads(max(1, min(int(threads), kernels.max_threads()))):
        return fn(*args)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        return os.cpu_count() or 1


def _host(address: str) -> str:
    return address.split("://")[-1].rsplit(":", 1)[0]


def _fair_share(host_slots: dict[str, int]) -> int:
    """This machine's cores / the task slots of all workers on it (outside a worker:
    all cores)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return _cores()
    slots = host_slots.get(_host(worker.address)) or worker.state.nthreads
    return max(1, _cores() // max(1, slots))


class DaskExecutor:
    """``submit(fn, *args)`` on a Dask client, returning ``concurrent.futures`` futures
    (what :func:`cvj.study.compare` takes as ``executor``)."""

    def __init__(self, client, *, threads: int | None = None, retries: int = DEFAULT_RETRIES, cluster=None):
        self.client = client
        self.cluster = cluster
        self.threads = threads
        self.retries = retries
        self._executor = client.get_executor(retries=retries)
        #: task slots (threads) of the workers on each machine, when the study starts
        self.host_slots: dict[str, int] = {}
        for addr, w in self.workers().items():
            host = _host(addr)
            self.host_slots[host] = self.host_slots.get(host, 0) + int(w.get("nthreads", 1))

    def submit(self, fn, *args) -> cf.Future:
        from dask.base import tokenize

        key = f"{getattr(fn, '__name__', 'task')}-{tokenize(fn, self.threads, *args)}"
        return self._executor.submit(_on_worker, fn, self.threads, __version__, self.host_slots, *args, key=key)

    @property
    def scheduler_address(self) -> str:
        return self.client.scheduler.address

    @property
    def dashboard_link(self) -> str | None:
        """The scheduler's dashboard, or None when it serves none."""
        try:
            link = self.client.dashboard_link
        except (KeyError, AttributeError):
            return None
        return link or None

    def dashboard(self) -> tuple[str, bool] | None:
        """``(link, graphs)`` if the scheduler serves its dashboard (asked over HTTP),
        else None (``dask scheduler --no-dashboard``). ``graphs`` is False when the
        scheduler lacks ``bokeh``: the page then only says so, and Dask's plain pages
        (``/info/main/workers.html``) remain."""
        import urllib.request

        link = self.dashboard_link
        if not link:
            return None
        try:
            with urllib.request.urlopen(link, timeout=3) as page:
                body = page.read(65536)
        except (OSError, ValueError):
            return None
        return link, b"needs bokeh" not in body

    def workers(self) -> dict[str, dict]:
        return self.client.scheduler_info(n_workers=-1)["workers"]

    def describe(self) -> str:
        ws = self.workers()
        threads = sum(w.get("nthreads", 0) for w in ws.values())
        kind = "local cluster" if self.cluster is not None else "cluster"
        kernel = (
            f"{self.threads} kernel threads per task"
            if self.threads
            else "kernel threads per task: a machine's cores / its workers' threads"
        )
        return f"Dask {kind} {self.scheduler_address}: {len(ws)} workers, {threads} task slots, {kernel}"


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:  # a declared dependency; still, say what to do
        raise ClusterError(f"Dask is not installed ({exc}); pip install 'dask[distributed]'") from None
    return distributed


def _check_workers(client, address: str, timeout: float) -> None:
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        raise ClusterError(
            f"no worker joined the Dask scheduler at {address} within {timeout:g} s; start some with: dask worker {address}"
        ) from None

    def probe():  # sent by value: it must run where cvj may be missing
        try:
            import cvj

            return cvj.__version__
        except Exception as exc:
            return f"cannot import cvj ({exc})"

    found = client.run(probe)
    wrong = {w: v for w, v in found.items() if v != __version__}
    if wrong:
        w, v = next(iter(wrong.items()))
        raise ClusterError(
            f"{len(wrong)} of {len(found)} Dask workers do not run cvj {__version__} (e.g. {w}: {v}); "
            "install this package, the same version, on every worker"
        )


@contextlib.contextmanager
def dask_executor(
    scheduler: str | None = None,
    *,
    workers: int | None = None,
    threads: int | None = None,
    retries: int = DEFAULT_RETRIES,
    timeout: float = DEFAULT_TIMEOUT,
) -> Iterator[DaskExecutor]:
    """A Dask executor for :func:`cvj.study.compare`: on the cluster at ``scheduler``
    (``tcp://HOST:PORT``), or on a ``LocalCluster`` of ``workers`` processes started
    here and stopped at the end.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``dask scheduler``); exclusive with ``workers``.
    workers : int, optional
        Start a local cluster of this many worker processes (one task at a time each).
    threads : int, optional
        Kernel threads per task (default: each machine's cores shared out among the
        threads of the workers on it, as counted when the study starts). Results do
        not depend on it.
    retries : int
        How many times a task that raised is run again.
    timeout : float
        Seconds to wait for the scheduler and for a first worker.

    A local cluster's scheduler serves its dashboard on a free port of 127.0.0.1
    (:attr:`DaskExecutor.dashboard_link`).

    Raises
    ------
    ClusterError
        The scheduler cannot be reached, no worker joined, or a worker lacks this
        version of cvj.
    """
    if (scheduler is None) == (workers is None):
        raise ValueError("give either scheduler (an existing cluster) or workers (a local cluster)")
    if retries < 0:
        raise ValueError("retries must be >= 0")
    distributed = _import_distributed()
    cluster = None
    client = None
    try:
        if scheduler is not None:
            try:
                client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
            address = scheduler
        else:
            if workers < 1:
                raise ValueError("workers must be >= 1")
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",  # its HTTP server runs even with None, on 8787
                silence_logs=logging.ERROR,
            )
            client = distributed.Client(cluster, set_as_default=False)
            address = cluster.scheduler_address
        _check_workers(client, address, timeout)
        yield DaskExecutor(client, threads=threads, retries=retries, cluster=cluster)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


__all__ = ["ClusterError", "DaskExecutor", "dask_executor"]
