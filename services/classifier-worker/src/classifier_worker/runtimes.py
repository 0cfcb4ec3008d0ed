"""The ways a worker can run a loaded model's forward pass. Each takes the normalised float batch
(N, 3, H, W) and returns the logits (N, classes) as a float32 tensor; the model's weights and
preprocessing are the same for all of them.

- ``torch``: the model in fp32 as :mod:`classifier_worker.optimize` rewrote it; the reference
  every other runtime is checked against.
- ``torch-bf16``: the same module under bf16 autocast. Only where the CPU computes bf16 in
  hardware (AVX512-BF16 or AMX); elsewhere torch emulates it and it is slower than fp32.
- ``onnxruntime``: ONNX Runtime's CPU provider on the model exported from the same checkpoint
  (:mod:`classifier_worker.export`).

Which one a worker uses is :mod:`classifier_worker.selection`'s decision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

TORCH = "torch"
TORCH_BF16 = "torch-bf16"
ONNXRUNTIME = "onnxruntime"
NAMES = (TORCH, TORCH_BF16, ONNXRUNTIME)


class Runtime(Protocol):
    name: str

    def __call__(self, batch: torch.Tensor) -> torch.Tensor: ...


class TorchRuntime:
    name = TORCH

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(batch)


class TorchBf16Runtime:
    name = TORCH_BF16

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return self.module(batch).float()


class OnnxRuntime:
    name = ONNXRUNTIME

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # The worker's parallelism is its processes (one per core); the torch thread setting
        # applies to this runtime too.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(None, {self._input: batch.numpy()})
        return torch.from_numpy(logits)
