"""Run the saliency command with one stage stuck in a real blocking call, to test that signals
still end the run: ``python -m tests.stall STAGE FIFO [saliency args...]``.

The stuck call is ``open(FIFO)`` for reading, which blocks in the kernel until a writer opens
the pipe (none does). Before blocking, it creates ``FIFO.reached`` so the test knows when, and
``FIFO.reached.PID`` so it knows which processes are stuck.

* ``read``: the reader (a worker process) of any input whose name contains ``stall``;
* ``read-threads``: the same in a reader thread (run it with ``--workers 0``);
* ``model``: the model's forward pass, from its ``SALIENCY_STALL_AT``-th call (default 3), or
  at that call alone with ``SALIENCY_STALL_ONCE=1`` (a writer opening the FIFO lets it go on);
* ``write``: the writer (a process) of any picture whose name contains ``stall``, after it has
  begun its temporary file (so a partial file exists while it is stuck);
* ``write-threads``: the same in a writer thread (run it with ``--workers 0``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def block(fifo: Path) -> None:
    Path(f"{fifo}.reached").touch()
    Path(f"{fifo}.reached.{os.getpid()}").touch()  # which processes have: torchrun's ranks
    with open(fifo, "rb") as pipe:  # blocks: nobody ever opens the pipe for writing
        pipe.read()


def stall_workers() -> None:
    """In a worker (or this process): block on the FIFO when reading an input named ``stall``
    (stage ``read``) or writing a picture named ``stall`` (stage ``write``)."""
    import saliency.pipeline.drawing as drawing
    import saliency.pipeline.reading as reading

    drawing.start_writer(int(os.environ["SALIENCY_STALL_RUN"]))
    fifo = Path(os.environ["SALIENCY_STALL_FIFO"])
    if os.environ["SALIENCY_STALL_STAGE"] == "read":
        read = reading.read_regular

        def stuck_read(path: Any) -> Any:
            if "stall" in Path(path).name:
                block(fifo)
            return read(path)

        reading.read_regular = stuck_read  # type: ignore[assignment]
        return
    write_atomic = drawing.write_atomic

    def stuck_write(path: Path, write: Any, partials: Any = None) -> None:
        def stuck(tmp: Path) -> None:
            write(tmp)
            if "stall" in path.name:
                block(fifo)

        write_atomic(path, stuck, partials)

    drawing.write_atomic = stuck_write  # type: ignore[assignment]


def main() -> None:
    stage, fifo = sys.argv[1], Path(sys.argv[2])
    import saliency_cli.common as common
    from saliency_cli.app import app

    if stage in ("read", "write"):  # in the worker processes, set up by their initializer
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        import saliency.pipeline.executor as executor

        os.environ["SALIENCY_STALL_FIFO"] = str(fifo)  # the workers inherit these
        os.environ["SALIENCY_STALL_RUN"] = str(os.getpid())
        os.environ["SALIENCY_STALL_STAGE"] = stage

        def stuck_pool(count: int) -> Any:
            context = multiprocessing.get_context("forkserver")
            return ProcessPoolExecutor(count, mp_context=context, initializer=stall_workers)

        executor.process_pool = stuck_pool  # type: ignore[assignment]
    elif stage in ("read-threads", "write-threads"):
        os.environ["SALIENCY_STALL_FIFO"] = str(fifo)
        os.environ["SALIENCY_STALL_RUN"] = str(os.getpid())
        os.environ["SALIENCY_STALL_STAGE"] = stage.split("-")[0]
        stall_workers()
    elif stage == "model":
        load = common.load
        calls = {"n": 0}
        stall_at = int(os.environ.get("SALIENCY_STALL_AT", "3"))
        once = os.environ.get("SALIENCY_STALL_ONCE") == "1"  # let go, the run goes on

        def stuck_load(*args: Any) -> Any:
            loaded = load(*args)

            def pre_hook(module: Any, inputs: Any) -> None:
                calls["n"] += 1
                if calls["n"] == stall_at or (calls["n"] > stall_at and not once):
                    block(fifo)

            loaded.model.register_forward_pre_hook(pre_hook)
            return loaded

        common.load = stuck_load  # type: ignore[assignment]
    else:
        raise SystemExit(f"unknown stage {stage}")
    app(sys.argv[3:], prog_name="saliency")


if __name__ == "__main__":
    main()
