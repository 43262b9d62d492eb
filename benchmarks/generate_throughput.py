"""Generation engine throughput against the local Messages API fake with a fixed response latency.

    .venv/bin/python benchmarks/generate_throughput.py [--requests 320] [--latency 1.0] [--json out.json]

The fake runs in its own process, so the CPU time measured here is the client's alone. For each
scenario it reports achieved requests/s divided by what the configured limits allow
(concurrency / latency, requests_per_minute / 60, input tokens per minute / tokens per request;
target >= 0.9) and the client CPU time per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.fake_api (the server module) when run as a script

from distill_lab.config import Config  # noqa: E402
from distill_lab.stages.generate.config import GenerateConfig, RecipeConfig  # noqa: E402
from distill_lab.stages.generate.engine import run_requests  # noqa: E402
from distill_lab.stages.generate.ratelimit import RateLimiter  # noqa: E402
from distill_lab.stages.generate.recipe import build_problems  # noqa: E402
from distill_lab.stages.generate.run import work_items  # noqa: E402
from distill_lab.stages.generate.shards import Journal  # noqa: E402
from distill_lab.teachers.config import TeacherConfig  # noqa: E402
from distill_lab.teachers.registry import build_teacher  # noqa: E402


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fake_api.anthropic_server", "--port", "0", "--latency",
                             str(latency), "--no-record"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("PORT "), f"fake server did not start: {line!r}"
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def scenario(url: str, name: str, n: int, latency: float, *, concurrency: int, stream: bool,
             rpm: float | None = None, itpm: float | None = None) -> dict:
    teacher_cfg = TeacherConfig(provider="anthropic", model="claude-opus-4-5", base_url=url, stream=stream,
                                effort="low", max_tokens=4096, api_key_env="ANTHROPIC_API_KEY")
    cfg = Config(stage="generate", teacher=teacher_cfg, recipe=RecipeConfig(size=n, test_size=0, ood_size=0),
                 generate=GenerateConfig(concurrency=concurrency, requests_per_minute=rpm,
                                         input_tokens_per_minute=itpm, progress=False))
    problems = build_problems(cfg.recipe).problems["train"]
    teacher = build_teacher(cfg.teacher)
    items = work_items(teacher, problems, 1)
    est_in = teacher.estimate_input_tokens(problems[0])
    allowed = min(concurrency / latency,
                  RateLimiter(rpm, itpm, None).allowed_rate(est_in, teacher_cfg.max_tokens))
    with tempfile.TemporaryDirectory() as d:
        journal = Journal(Path(d) / "shards", fsync_interval_s=cfg.generate.fsync_interval_s)

        async def go():
            try:
                return await run_requests(cfg, teacher, items, journal)
            finally:
                await teacher.aclose()

        cpu0 = time.process_time()
        res = asyncio.run(go())
        cpu = time.process_time() - cpu0
        journal.close()
    assert res.tally.done == n, f"{name}: only {res.tally.done}/{n} rows ({res.failures})"
    achieved = n / res.wall_s
    if itpm:  # the limiter settles on the real input tokens (not the estimate): the allowed rate follows them
        allowed = min(concurrency / latency, RateLimiter(rpm, itpm, None).allowed_rate(
            res.tally.input_tokens / n, teacher_cfg.max_tokens))
    return {"scenario": name, "requests": n, "latency_s": latency, "concurrency": concurrency, "rpm": rpm,
            "itpm": itpm, "stream": stream, "wall_s": round(res.wall_s, 3), "achieved_rps": round(achieved, 2),
            "allowed_rps": round(allowed, 2), "ratio": round(achieved / allowed, 3),
            "client_cpu_ms_per_request": round(1000 * cpu / n, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=320)  # a multiple of the concurrency (16)
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    os.environ.setdefault("ANTHROPIC_API_KEY", "sk-bench-not-a-real-key")
    proc, url = start_server(args.latency)
    n, lat = args.requests, args.latency
    try:
        results = [
            scenario(url, "concurrency-bound, JSON", n, lat, concurrency=16, stream=False),
            scenario(url, "concurrency-bound, SSE stream", n, lat, concurrency=16, stream=True),
            scenario(url, "requests/min-bound (1200 rpm)", n, lat, concurrency=64, stream=False, rpm=1200),
            scenario(url, "input-tokens/min-bound (9000 itpm)", n, lat, concurrency=64, stream=False, itpm=9000),
        ]
    finally:
        proc.kill()
        proc.wait()
    print(f"{'scenario':34} {'allowed/s':>9} {'achieved/s':>10} {'ratio':>6} {'client CPU ms/req':>17}")
    for r in results:
        print(f"{r['scenario']:34} {r['allowed_rps']:9.2f} {r['achieved_rps']:10.2f} {r['ratio']:6.3f} "
              f"{r['client_cpu_ms_per_request']:17.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
