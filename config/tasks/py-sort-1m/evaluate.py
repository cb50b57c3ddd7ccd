"""Evaluator of the py-sort-1m task (pinned by the task's prepare_cid; researchers cannot edit it).

Usage: python3 evaluate.py CANDIDATE.py

Three times: 1,000,000 fresh random 32-bit integers go to a new process that has imported the
candidate (so nothing can be computed before the data exists); the clock runs from sending the
input to receiving the sorted output, which must equal sorted(input). Prints the median as
`sort_ms: <ms>` on the last line. A wrong answer, a crash or a timeout is a failed run.
"""
import array
import ctypes
import os
import statistics
import subprocess
import sys
import time

N = 1_000_000
RUNS = 3


def worker(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("candidate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = sys.stdout.buffer
    out.write(b"R")
    out.flush()
    xs = array.array("i")
    xs.frombytes(sys.stdin.buffer.read(4 * N))
    result = module.sort(xs.tolist())
    out.write(array.array("i", result).tobytes())
    out.flush()


def main(path):
    # the candidate runs as the same user: make this process's memory and descriptors
    # unreadable to it (PR_SET_DUMPABLE = 4)
    try:
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
    except Exception:
        pass
    times = []
    for run in range(RUNS):
        data = os.urandom(4 * N)
        expected = array.array("i")
        expected.frombytes(data)
        expected = array.array("i", sorted(expected))
        child = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        if child.stdout.read(1) != b"R":
            child.wait()
            sys.exit(f"error: the candidate failed before sorting (exit code {child.returncode})")
        start = time.perf_counter()
        try:
            child.stdin.write(data)
            child.stdin.close()
        except BrokenPipeError:
            pass
        got = child.stdout.read()
        elapsed = time.perf_counter() - start
        child.wait()
        if child.returncode != 0:
            sys.exit(f"error: the candidate exited with code {child.returncode}")
        if got != expected.tobytes():
            sys.exit("error: wrong result: the output is not the sorted input")
        times.append(elapsed * 1000)
        print(f"run {run + 1}: {elapsed * 1000:.1f} ms", flush=True)
    print(f"sort_ms: {statistics.median(times):.3f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit("usage: evaluate.py CANDIDATE.py")
