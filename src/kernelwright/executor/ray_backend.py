"""``--executor ray[:ADDRESS]``: every work a Ray task, on whichever node has a free GPU (or CPU).

One fresh worker process per task (``max_calls=1``) so a GPU's memory goes back after each unit; Ray
pins it with ``CUDA_VISIBLE_DEVICES`` (``num_gpus=1``). A task is retried only when its worker process
or node dies (``max_retries``; ``retry_exceptions=False``): our own errors come back as results. When
the retries run out the unit is an infrastructure failure, never a verdict on a candidate. The task
gets its input files as bytes, runs in a temporary folder on its node (the same sandbox as locally),
and returns its artifacts as a tar archive that is unpacked into the driver's run directory.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import tarfile
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from kernelwright.errors import UsageError
from kernelwright.executor.base import ERROR, INFRASTRUCTURE, Executor, Finished, Started, Work, describe_exception
from kernelwright.executor.local import run_child

RETRIES = 3
MISSING = "--executor ray needs Ray: install it with `pip install 'kernelwright[ray]'`."


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(MISSING) from None
    return ray


def run_remote(payload: dict[str, Any]) -> dict[str, Any]:
    """The Ray task: inputs written to a temporary folder, the work run there, its artifacts archived."""
    scratch = Path(tempfile.mkdtemp(prefix="kw-ray-"))
    try:
        kwargs = dict(payload["kwargs"])
        for name, shipped in payload["files"].items():
            paths = [_write_input(scratch / "inputs" / name / str(i), filename, data)
                     for i, (filename, data) in enumerate(shipped["items"])]
            kwargs[name] = paths if shipped["many"] else paths[0]
        out = scratch / "out" / payload["key"]  # the same folder name as on the driver
        out.parent.mkdir(parents=True)
        started = time.monotonic()
        # a child process, as locally: when this Ray worker dies, the child's whole group dies with it
        done = run_child(Work(payload["key"], payload["call"], kwargs, out, log=scratch / "worker.log"), pin=None)
        reply = {"ok": done.ok, "result": done.result, "failure": done.failure, "message": done.message}
        reply.update(seconds=time.monotonic() - started, node=_node_name(), archive=_archive(out), out=str(out),
                     inputs={name: kwargs[name] for name in payload["files"]})
        return reply
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_input(folder: Path, filename: str, data: bytes) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / filename).write_bytes(data)
    return str(folder / filename)


def _ship(value: str | list[str]) -> dict[str, Any]:
    paths = [value] if isinstance(value, (str, Path)) else list(value)
    return {"many": not isinstance(value, (str, Path)), "items": [(Path(p).name, Path(p).read_bytes()) for p in paths]}


def _as_list(value) -> list[str]:
    return [str(value)] if isinstance(value, (str, Path)) else [str(v) for v in value]


def _node_name() -> str:
    try:
        import ray

        if not ray.is_initialized():  # not in a Ray worker: asking would start a local Ray instance
            return socket.gethostname()
        return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"
    except Exception:  # noqa: BLE001 -- a name for the display only
        return socket.gethostname()


def _archive(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        if folder.exists():
            tar.add(folder, arcname=".")
    return buffer.getvalue()


def _unpack(archive: bytes, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")  # no absolute paths or links out of dest
        else:
            tar.extractall(dest)


def _rewrite(result: dict[str, Any], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The node's temporary paths in a result replaced by the driver's."""
    text = json.dumps(result)
    for remote, local in sorted(pairs, key=lambda pair: -len(pair[0])):
        text = text.replace(json.dumps(remote)[1:-1], json.dumps(local)[1:-1])
    return json.loads(text)


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, address: str | None, *, gpu: bool, retries: int = RETRIES):
        self.ray = import_ray()
        self.address, self.gpu = address, gpu
        try:
            self.ray.init(address=address or None, ignore_reinit_error=True, log_to_driver=False,
                          configure_logging=False)
        except ConnectionError as exc:
            raise UsageError(f"cannot reach the Ray cluster at {address or 'this host'} ({exc}); start it with "
                             "`ray start --head` or pass --executor ray:HOST:PORT.") from None
        if self.capacity() < 1:
            self.ray.shutdown()
            kind = "GPU" if gpu else "CPU"
            raise UsageError(f"the Ray cluster at {address or 'this host'} has no {kind} to run units on; add a node "
                             f"with a {kind} or run with --device {'cpu' if gpu else 'cuda'}.")
        resource = {"num_gpus": 1} if gpu else {"num_cpus": 1}
        self.task = self.ray.remote(max_calls=1, max_retries=retries, retry_exceptions=False,
                                    **resource)(run_remote)

    def describe(self) -> str:
        kind = "GPU" if self.gpu else "CPU"
        return f"ray executor at {self.address or 'a local cluster'}: {self.capacity()} {kind} slot(s)"

    def capacity(self) -> int:
        return int(self.ray.cluster_resources().get("GPU" if self.gpu else "CPU", 0))

    def unit_device(self, device: str) -> str:
        return "cuda" if device.startswith("cuda") else device

    def submit(self, work: Work, started: Started | None = None) -> "Future[Finished]":
        payload = to_payload(work)
        if started is not None:
            started(work, "ray")
        begin = time.monotonic()
        done: Future[Finished] = Future()
        ref = self.task.remote(payload)
        ref.future().add_done_callback(lambda f: done.set_result(self._settle(work, f, begin)))
        return done

    def _settle(self, work: Work, future, begin: float) -> Finished:
        try:
            return self._finish(work, future, begin)
        except Exception as exc:  # noqa: BLE001 -- an archive that would not unpack: the driver's side failed
            return Finished(work.key, None, ERROR, describe_exception(exc), "ray", time.monotonic() - begin)

    def _finish(self, work: Work, future, begin: float) -> Finished:
        seconds = time.monotonic() - begin
        try:
            reply = future.result()
        except self.ray.exceptions.RayTaskError as exc:  # our code raised outside the work: no retry
            return Finished(work.key, None, ERROR, describe_exception(exc.cause or exc), "ray", seconds)
        except Exception as exc:  # noqa: BLE001 -- a worker or node died and the retries ran out
            return Finished(work.key, None, INFRASTRUCTURE, describe_exception(exc), "ray", seconds)
        return from_reply(work, reply, seconds)

    def close(self) -> None:
        self.ray.shutdown()


def to_payload(work: Work) -> dict[str, Any]:
    """What a Ray task gets: the work, with the bytes of its input files in place of their paths."""
    return {"key": work.key, "call": work.call,
            "kwargs": {k: v for k, v in work.kwargs.items() if k not in work.files},
            "files": {n: _ship(work.kwargs[n]) for n in work.files}}


def from_reply(work: Work, reply: dict[str, Any], seconds: float) -> Finished:
    """The task's artifacts unpacked into ``work.out``; its result with the node's paths made the driver's."""
    _unpack(reply["archive"], work.out)
    if not reply["ok"]:
        return Finished(work.key, None, reply["failure"], reply["message"], reply["node"], seconds)
    pairs = [(reply["out"], str(work.out))]
    for name, remote in reply["inputs"].items():
        pairs += zip(_as_list(remote), _as_list(work.kwargs[name]))
    return Finished(work.key, _rewrite(reply["result"], pairs), where=reply["node"], seconds=seconds)
