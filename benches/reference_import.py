#!/usr/bin/env python3
"""The reference (sporemesh 0.6.0) doing what `spored import` does, for a side-by-side figure:
parse each JSONL line, ExperimentRecord(**payload), verify_cid + verify_signature, then
ResearchGraph.insert into its SQLite store on disk. Then frontier_by_task + recent_by_task
latency at that size. Prints one JSON object.

    $PYSPORE_VENV/bin/python benches/reference_import.py FILE.jsonl LIMIT DIR
"""
import json
import statistics
import sys
import time
from pathlib import Path

from spore.graph import ResearchGraph
from spore.record import ExperimentRecord

path, limit, workdir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
records = []
with open(path) as f:
    for line in f:
        msg = json.loads(line)
        if msg["type"] == "experiment":
            records.append(msg["payload"])
        if len(records) >= limit:
            break

t0 = time.perf_counter()
parsed = []
for payload in records:
    r = ExperimentRecord.from_json(dict(payload))
    assert r.verify_cid() and r.verify_signature()
    parsed.append(r)
t_verify = time.perf_counter() - t0

graph = ResearchGraph(workdir / "graph.sqlite")
t1 = time.perf_counter()
for r in parsed:
    graph.insert(r)
t_insert = time.perf_counter() - t1
task_id = parsed[0].task_id

lat_frontier, lat_status = [], []
for _ in range(5):
    t = time.perf_counter()
    graph.frontier_by_task(task_id)
    lat_frontier.append(time.perf_counter() - t)
    t = time.perf_counter()
    graph.frontier_by_task(task_id)
    graph.recent_by_task(task_id, 10)
    graph.count()
    lat_status.append(time.perf_counter() - t)

print(json.dumps({
    "records": len(parsed),
    "verify_per_s": len(parsed) / t_verify,
    "insert_per_s": len(parsed) / t_insert,
    "import_per_s": len(parsed) / (t_verify + t_insert),
    "frontier_ms_p50": statistics.median(lat_frontier) * 1e3,
    "status_ms_p50": statistics.median(lat_status) * 1e3,
}))
