"""The scorers' forward pass: PyTorch, or the CPU fast path on ONNX Runtime.

On a CPU a small encoder's forward pass in PyTorch spends much of its time dispatching
operators one by one; ONNX Runtime runs the same graph fused. The model is exported when the
server starts (seconds for MiniLM) and checked against PyTorch on texts of another batch
size and length than the export's; the fp32 graph agrees with PyTorch to about 1e-5.

`auto` takes `onnx` (fp32) on a CPU and PyTorch on a GPU. `onnx-int8` adds dynamic int8
quantisation of the weights (per channel), faster again, but not the default: on the
zero-shot prelabeler, whose label scores are cosines a few hundredths apart sharpened by a
temperature of 0.05, it lost several points of macro-F1 on DynaSent (`bench_serve.py`
measures both against PyTorch in the same run).

Whenever the fast path cannot be had (onnxruntime or onnx not installed, an export that
fails or disagrees with PyTorch) the server logs why and serves with PyTorch: a slower
server, never a missing one.
"""

from __future__ import annotations

import collections
import copy
import itertools
import logging
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")
AGREEMENT = 1e-3
"""Largest difference allowed between the exported fp32 graph and PyTorch on the check."""
EXPORT_TEXTS = ("a short one", "and a second, somewhat longer text")
"""Of different lengths, so the traced graph applies the attention mask to padding (a batch
without padding lets the model skip its mask, and the trace would keep that shortcut)."""
CHECK_TEXTS = ("one", "a third text, longer than the export's texts were", "and a fourth")

PER_CHANNEL = True
PASS_COST_TOKENS = {"torch": 36, "onnx": 16, "onnx-int8": 16}
"""What one forward pass on a CPU costs besides its tokens, in tokens' worth, by runtime:
streaming the weights through the cache and dispatching every operator, whatever the batch.
Measured on all-MiniLM-L6-v2 on one thread of this project's 2-core machine (AMD EPYC): a pass
costs about 0.22 ms a token (fp32 ONNX Runtime) plus about 3.5 ms, one text of 24 tokens 8.9
ms against 5.9 ms a text in a pass of 32; int8 0.09 ms a token plus about 1.5 ms; PyTorch
0.33 ms a token plus about 12 ms."""

Forward = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


class FastPathUnavailable(RuntimeError):
    """The ONNX Runtime path cannot serve this model here; the reason is the message."""


def torch_forward(model: torch.nn.Module, output: str) -> Forward:
    """The model's `output` (`logits`, `last_hidden_state`) under `torch.inference_mode`."""

    def forward(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            result: torch.Tensor = getattr(model(**inputs), output)
        return result.float()

    return forward


def choose_forward(
    model: torch.nn.Module,
    output: str,
    tokenize: Callable[[Sequence[str]], Mapping[str, torch.Tensor]],
    runtime: str,
    device: torch.device,
) -> tuple[Forward, str]:
    """The forward pass `runtime` asks for, and the name of the runtime it got; on a CPU, run
    as the cheapest passes of similar length (`length_grouped`)."""
    forward, name = _runtime_forward(model, output, tokenize, runtime, device)
    if device.type != "cpu":
        return forward, name
    return length_grouped(forward, PASS_COST_TOKENS[name]), name


def length_grouped(forward: Forward, pass_cost: int) -> Forward:
    """`forward` over a padded batch, run as the passes `plan_passes` finds cheapest, each
    trimmed to its own longest row, and put back together (padding positions of a per-token
    output are zeros).

    On a CPU a forward pass costs in proportion to the tokens it computes, padding included,
    and a batch of concurrent requests mixes short texts with long ones: measured on
    all-MiniLM-L6-v2, batches of 32 mixed requests ran at 80 texts/s where single texts ran
    at 87/s and length-sorted batches at 143/s. But every pass also has a fixed cost
    (`PASS_COST_TOKENS`), so splitting a batch into many small passes gives back what
    batching saved. A GPU computes the padding in parallel, so there the batch runs whole.
    """

    def grouped(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        mask = inputs["attention_mask"]
        lengths = mask.sum(-1)
        width = mask.shape[1]
        right_padded = torch.equal(mask, (torch.arange(width) < lengths[:, None]).to(mask.dtype))
        sizes = lengths.tolist()
        passes = plan_passes(sizes, pass_cost)
        if len(passes) == 1 or not right_padded:
            return forward(inputs)
        parts = []
        for rows_of_pass in passes:
            rows = torch.tensor(rows_of_pass)
            longest = max(sizes[i] for i in rows_of_pass)
            parts.append((rows, forward({k: v[rows, :longest] for k, v in inputs.items()})))
        first = parts[0][1]
        shape = (
            (len(sizes), width, *first.shape[2:])
            if first.dim() >= 3
            else (len(sizes), *first.shape[1:])
        )
        result = first.new_zeros(shape)
        for rows, part in parts:
            if part.dim() >= 3:
                result[rows, : part.shape[1]] = part
            else:
                result[rows] = part
        return result

    return grouped


def plan_passes(lengths: Sequence[int], pass_cost: int) -> list[list[int]]:
    """The rows (indices into `lengths`) split into the forward passes that cost least, a pass
    costing `pass_cost` plus its rows times its longest row; shortest rows first.

    A cheapest split only ever groups rows that are neighbours in length order (and never
    splits rows of equal length), so it is found by dynamic programming over the distinct
    lengths in order.
    """
    counts = collections.Counter(lengths)
    distinct = sorted(counts)
    rows_up_to = [0, *itertools.accumulate(counts[v] for v in distinct)]
    # cheapest[j]: the least cost of the rows of the j shortest lengths, its last pass
    # starting at the rows of length distinct[start[j]].
    cheapest = [0] * (len(distinct) + 1)
    start = [0] * (len(distinct) + 1)
    for j in range(1, len(distinct) + 1):
        cheapest[j], start[j] = min(
            (cheapest[i] + pass_cost + (rows_up_to[j] - rows_up_to[i]) * distinct[j - 1], i)
            for i in range(j)
        )
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    passes = []
    j = len(distinct)
    while j:
        passes.append(order[rows_up_to[start[j]] : rows_up_to[j]])
        j = start[j]
    return passes[::-1]


def _runtime_forward(
    model: torch.nn.Module,
    output: str,
    tokenize: Callable[[Sequence[str]], Mapping[str, torch.Tensor]],
    runtime: str,
    device: torch.device,
) -> tuple[Forward, str]:
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
    plain = torch_forward(model, output)
    if runtime == "torch" or (runtime == "auto" and device.type != "cpu"):
        return plain, "torch"
    chosen = "onnx" if runtime == "auto" else runtime
    try:
        if device.type != "cpu":
            raise FastPathUnavailable(f"it runs on the CPU, and the model is on {device}")
        return onnx_forward(model, output, tokenize, quantize=chosen == "onnx-int8"), chosen
    except FastPathUnavailable as err:
        log.warning("%s fast path unavailable, serving with PyTorch: %s", chosen, err)
        return plain, "torch"


def onnx_forward(
    model: torch.nn.Module,
    output: str,
    tokenize: Callable[[Sequence[str]], Mapping[str, torch.Tensor]],
    *,
    quantize: bool,
) -> Forward:
    """`model`'s `output` on ONNX Runtime (int8 weights when `quantize`), checked first."""
    try:
        import onnxruntime  # type: ignore[import-untyped]
    except ImportError as err:
        raise FastPathUnavailable(f"onnxruntime is not installed ({err})") from None
    sample = dict(tokenize(EXPORT_TEXTS))
    names = list(sample)
    with tempfile.TemporaryDirectory(prefix="labelloop-onnx-") as scratch:
        path = Path(scratch) / "model.onnx"
        _export(model, output, sample, path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning for the next operator: spinning takes
        # the cores the event loop, the tokenizer and the clients need (measured on MiniLM,
        # 2 threads on this 2-core machine: 185 texts/s in passes of 32 without spinning,
        # 132/s with it; one text at a time 131/s against 119/s).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        forward = _session_forward(session, output)
        check = dict(tokenize(CHECK_TEXTS))
        gap = (forward(check) - torch_forward(model, output)(check)).abs().max().item()
        if not gap <= AGREEMENT:
            raise FastPathUnavailable(f"the exported model differs from PyTorch by {gap:.2g}")
        if quantize:
            quantized = Path(scratch) / "model-int8.onnx"
            _quantize(path, quantized)
            session = onnxruntime.InferenceSession(str(quantized), options, providers=providers)
            forward = _session_forward(session, output)
    log.info("serving with ONNX Runtime%s, inputs %s", " (int8 weights)" if quantize else "", names)
    return forward


def _export(
    model: torch.nn.Module, output: str, sample: dict[str, torch.Tensor], path: Path
) -> None:
    names = list(sample)
    with torch.inference_mode():
        rank = getattr(model(**sample), output).dim()
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes[output] = {0: "batch", 1: "sequence"} if rank == 3 else {0: "batch"}
    try:
        import onnx  # noqa: F401  (the exporter and the quantiser need it)

        # The TorchScript exporter: the newer torch.export one needs onnxscript, and gains
        # nothing for an encoder's static graph. It exports a copy because tracing leaves the
        # module it traced computing differently (measured: hidden states off by up to 1.8
        # on MiniLM), and the model itself must stay exact for the check and the fallback.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Outputs(copy.deepcopy(model), names, output),
                tuple(sample.values()),
                str(path),
                input_names=names,
                output_names=[output],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
    except Exception as err:  # any exporter failure means: serve with PyTorch instead
        raise FastPathUnavailable(f"the ONNX export failed: {err}") from err


def _quantize(source: Path, target: Path) -> None:
    try:
        from onnxruntime.quantization import (  # type: ignore[import-untyped]
            QuantType,
            quantize_dynamic,
        )

        # The quantiser logs every tensor it considers, on the root logger.
        logging.disable(logging.WARNING)
        try:
            quantize_dynamic(
                str(source), str(target), weight_type=QuantType.QInt8, per_channel=PER_CHANNEL
            )
        finally:
            logging.disable(logging.NOTSET)
    except Exception as err:  # as above: a failed quantisation leaves PyTorch serving
        raise FastPathUnavailable(f"int8 quantisation failed: {err}") from err


def _session_forward(session: Any, output: str) -> Forward:
    wanted = [i.name for i in session.get_inputs()]

    def forward(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: inputs[name].cpu().numpy() for name in wanted}
        return torch.from_numpy(session.run([output], feeds)[0]).float()

    return forward


class _Outputs(torch.nn.Module):
    """The model as positional tensors in → one output tensor out, as the exporter needs."""

    def __init__(self, model: torch.nn.Module, names: list[str], output: str) -> None:
        super().__init__()
        self.model = model
        self.names = names
        self.output = output

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = getattr(
            self.model(**dict(zip(self.names, tensors, strict=True))), self.output
        )
        return result
