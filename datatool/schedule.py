"""Where per-sample and per-checkpoint work runs: here, or on a Dask cluster.

``check`` hands it one unit per sample (or chunk of flat pairs), ``evaluate``
one unit per checkpoint x image batch. Every scheduler yields the results *in
the order of the units*, as they become available, so the caller reduces a
stream (findings, metric rows) and never holds more than a window of results:

``local``
    This process, or a pool of ``workers`` processes (``check --workers``).
``dask``
    A :class:`distributed.LocalCluster` started for the run (one worker
    process per core, one thread each).
``<scheme>://HOST:PORT``
    An existing Dask scheduler, e.g. ``tcp://10.0.0.5:8786`` (started by
    ``dask scheduler`` or dask-jobqueue on SLURM/PBS). Workers must see the
    same files at the same paths as the client.

Dask is an optional extra (``pip install "datatool[dask]"``); it is imported
only when a Dask scheduler is asked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from datatool.errors import UsageError

DASK_INSTALL = 'pip install "datatool[dask]"'
"""The command that installs the optional Dask extra."""

_ADDRESS = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")


def parse_scheduler(spec: str) -> str:
    """Validate a ``--scheduler`` value: ``local``, ``dask`` or ``<scheme>://HOST:PORT``.

    >>> parse_scheduler("tcp://10.0.0.5:8786")
    'tcp://10.0.0.5:8786'
    >>> parse_scheduler("slurm")
    Traceback (most recent call last):
    ...
    datatool.errors.UsageError: --scheduler 'slurm': expected local, dask or a scheduler address \
like tcp://HOST:PORT
    """
    spec = spec.strip()
    if spec in ("local", "dask") or _ADDRESS.match(spec):
        return spec
    raise UsageError(
        f"--scheduler {spec!r}: expected local, dask or a scheduler address like tcp://HOST:PORT"
    )


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError(
            f"--scheduler dask needs the optional Dask extra, which is not installed: "
            f"{DASK_INSTALL}"
        ) from None
    return distributed


class Scheduler:
    """Runs ``func(item)`` for each item and yields the results in item order.

    Parameters
    ----------
    spec : str
        ``local``, ``dask`` or a scheduler address (see the module docstring).
    workers : int
        Processes of the ``local`` scheduler (1: in this process) and of the
        ``dask`` LocalCluster.
    cluster_options : dict, optional
        Extra keyword arguments for :class:`distributed.LocalCluster` (tests use
        ``processes=False``).

    Use as a context manager: a LocalCluster it started is closed on exit.
    """

    def __init__(
        self, spec: str = "local", workers: int = 1, cluster_options: dict | None = None
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.spec = parse_scheduler(spec)
        self.workers = workers
        self.cluster_options = dict(cluster_options or {})
        self._client: Any = None
        self._cluster: Any = None

    @property
    def is_dask(self) -> bool:
        """Whether the work goes to Dask workers."""
        return self.spec != "local"

    def __enter__(self) -> Scheduler:
        if self.is_dask:
            distributed = _import_distributed()
            if self.spec == "dask":
                options = {
                    "n_workers": self.workers,
                    "threads_per_worker": 1,
                    "dashboard_address": ":0",
                    **self.cluster_options,
                }
                self._cluster = distributed.LocalCluster(**options)
                self._client = distributed.Client(self._cluster)
            else:
                try:
                    self._client = distributed.Client(self.spec, timeout="20s")
                except OSError as exc:
                    raise UsageError(
                        f"--scheduler {self.spec}: cannot reach the Dask scheduler ({exc})"
                    ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def map(
        self,
        func: Callable[..., Any],
        items: Iterable[Any],
        *,
        window: int | None = None,
        pure: bool = False,
    ) -> Iterator[Any]:
        """``func(item)`` for each item, in order, keeping at most ``window`` in flight.

        A unit that raises re-raises here, on the client, with its own error.
        """
        if not self.is_dask:
            yield from self._map_local(func, items, window)
            return
        if self._client is None:
            raise RuntimeError("use the Scheduler as a context manager: with Scheduler(...) as s")
        yield from _ordered(
            lambda item: self._client.submit(func, item, pure=pure),
            lambda future: future.result(),
            items,
            window or 4 * max(1, len(self._client.nthreads()) or self.workers),
        )

    def _map_local(
        self, func: Callable[..., Any], items: Iterable[Any], window: int | None
    ) -> Iterator[Any]:
        if self.workers <= 1:
            for item in items:
                yield func(item)
            return
        with ProcessPoolExecutor(max_workers=self.workers) as pool:
            yield from _ordered(
                lambda item: pool.submit(func, item),
                lambda future: future.result(),
                items,
                window or 4 * self.workers,
            )


def _ordered(
    submit: Callable[[Any], Any], result: Callable[[Any], Any], items: Iterable[Any], window: int
) -> Iterator[Any]:
    """Submit items with at most ``window`` pending; yield their results in submission order."""
    pending: list[Any] = []
    for item in items:
        pending.append(submit(item))
        if len(pending) >= window:
            yield result(pending.pop(0))
    while pending:
        yield result(pending.pop(0))


@contextmanager
def scheduler(spec: str = "local", workers: int = 1, **cluster_options: Any) -> Iterator[Scheduler]:
    """``with scheduler("dask") as s: s.map(...)``; see :class:`Scheduler`."""
    with Scheduler(spec, workers, cluster_options) as running:
        yield running


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """``items`` cut into consecutive slices of at most ``size``.

    >>> chunks([1, 2, 3, 4, 5], 2)
    [[1, 2], [3, 4], [5]]
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return [items[i : i + size] for i in range(0, len(items), size)]


def prefetch(items: Iterable[Any], load: Callable[[Any], Any]) -> Iterator[Any]:
    """``load(item)`` for each item, in order, the next one loading in a thread meanwhile.

    While the caller works on one result (a forward pass), one worker thread
    reads and preprocesses the next item, so decoding overlaps the computation
    (image decoding and torch resizing release the GIL). An error of ``load``
    is raised when its item's turn comes.

    >>> list(prefetch([1, 2, 3], lambda x: 10 * x))
    [10, 20, 30]
    """
    iterator = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = None
        for item in iterator:
            upcoming = pool.submit(load, item)
            if pending is not None:
                yield pending.result()
            pending = upcoming
        if pending is not None:
            yield pending.result()
