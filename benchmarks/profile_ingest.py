"""Run ``python -m ingest`` under cProfile in EVERY thread, then write one merged profile.

``python -m cProfile -m ingest`` profiles only the main thread, which just waits for a signal: the work
happens in paho's network thread (decode, validate, batch) and the ingest's flush thread (store write,
acknowledgements). This wrapper gives each thread its own ``cProfile.Profile`` and merges them at exit.

``python -m benchmarks.profile_ingest -o ingest.prof [MODULE]`` (MODULE defaults to ``ingest``); read it with
``python -m pstats ingest.prof`` or ``python -m benchmarks.profile_ingest --show ingest.prof``.
Times are per-thread CPU seconds (``time.thread_time``) unless ``--timer wall``.
Profiling slows the process 2-3x: never compare its CPU times with unprofiled runs.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import runpy
import sys
import threading
import time


def show(path: str, limit: int = 15, out=None) -> None:
    out = out or sys.stdout
    for key in ("tottime", "cumulative"):
        print(f"--- top {limit} by {key}: {path}", file=out)
        pstats.Stats(path, stream=out).strip_dirs().sort_stats(key).print_stats(limit)


def run(module: str, output: str, timer: str = "cpu") -> None:
    # CPU time of the calling thread: waits (locks, select/poll) cost nothing, so the profile shows where
    # the process spends its CPU-seconds, the benchmark's measure. "wall" is cProfile's default clock.
    make = (lambda: cProfile.Profile(time.thread_time)) if timer == "cpu" else cProfile.Profile
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        prof = make()
        with lock:
            profiles.append(prof)
        prof.enable()
        try:
            original_run(self)
        finally:
            prof.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main_prof = make()
    profiles.append(main_prof)
    sys.argv = [module]
    main_prof.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        main_prof.disable()
        with lock:
            stats = pstats.Stats(profiles[0])
            for p in profiles[1:]:
                try:
                    stats.add(p)
                except TypeError:  # a thread that never ran any Python code
                    pass
        stats.dump_stats(output)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", help="where to write the merged profile")
    ap.add_argument("--show", metavar="PROF", help="print the top functions of a profile and exit")
    ap.add_argument("--limit", type=int, default=15)
    ap.add_argument("--timer", choices=("cpu", "wall"), default="cpu",
                    help="per-thread CPU time (default) or wall time (includes waiting)")
    ap.add_argument("module", nargs="?", default="ingest")
    args = ap.parse_args(argv)
    if args.show:
        show(args.show, args.limit)
        return
    if not args.output:
        ap.error("-o/--output is required")
    run(args.module, args.output, args.timer)


if __name__ == "__main__":
    main()
