"""The ways a worker can run a loaded model's forward pass. Each takes the normalised float32 batch
(N, 3, H, W) as a numpy array and returns the logits (N, classes) as a float32 numpy array; the
model's weights and preprocessing are the same for all of them.

- ``torch``: the model in fp32 as :mod:`classifier_worker.optimize` rewrote it; the reference
  every other runtime is checked against.
- ``torch-bf16``: the same module under bf16 autocast. Only where the CPU computes bf16 in
  hardware (AVX512-BF16 or AMX); elsewhere torch emulates it and it is slower than fp32.
- ``torch-cuda``: a copy of that module on the GPU, fp32 (a CUDA build of torch and a GPU: the
  worker image's ``-cu128`` variant on a GPU node).
- ``onnxruntime``: ONNX Runtime's CPU provider on the model exported from the same checkpoint
  (:mod:`classifier_worker.export`).
- ``onnxruntime-int8``: ONNX Runtime's CPU provider on that export quantized to int8, weights per
  channel, activations calibrated on gallery photos (:mod:`classifier_worker.quantize`).

Which one a worker uses is :mod:`classifier_worker.selection`'s decision. Only the torch runtimes
import torch, when they are made: a worker without torch installed runs ONNX Runtime alone
(:mod:`classifier_worker.onnx_only`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

TORCH = "torch"
TORCH_BF16 = "torch-bf16"
TORCH_CUDA = "torch-cuda"
ONNXRUNTIME = "onnxruntime"
ONNXRUNTIME_INT8 = "onnxruntime-int8"
NAMES = (TORCH, TORCH_BF16, TORCH_CUDA, ONNXRUNTIME, ONNXRUNTIME_INT8)
# The runtimes that need torch installed, and those that run a model file on ONNX Runtime.
TORCH_RUNTIMES = (TORCH, TORCH_BF16, TORCH_CUDA)
ONNX_RUNTIMES = (ONNXRUNTIME, ONNXRUNTIME_INT8)


def torch_installed() -> bool:
    """Whether torch can be imported here (without importing it)."""
    return importlib.util.find_spec("torch") is not None


class RuntimeUnavailable(RuntimeError):
    """The runtime asked for cannot run here or failed its check."""


class Runtime(Protocol):
    name: str

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class TorchRuntime:
    name = TORCH

    def __init__(self, module: torch.nn.Module):
        import torch

        self._torch = torch
        self.module = module

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self.module(self._torch.from_numpy(batch)).numpy()


class TorchBf16Runtime:
    name = TORCH_BF16

    def __init__(self, module: torch.nn.Module):
        import torch

        self._torch = torch
        self.module = module

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return self.module(torch.from_numpy(batch)).float().numpy()


class TorchCudaRuntime:
    name = TORCH_CUDA

    def __init__(self, module: torch.nn.Module, device: str = "cuda"):
        """A copy of ``module`` on ``device`` (tests run the same code on "cpu"): ``module``
        itself stays where it is, the reference this runtime is checked against."""
        import copy

        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            why = "this torch is a CPU build" if torch.version.cuda is None else "torch finds no usable GPU"
            raise RuntimeUnavailable(f"no CUDA device: {why}")
        self._torch = torch
        self.device = torch.device(device)
        self.module = copy.deepcopy(module).to(self.device)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            logits = self.module(torch.from_numpy(batch).to(self.device))
            return logits.float().cpu().numpy()


class OnnxRuntime:
    def __init__(self, path: Path, threads: int, name: str = ONNXRUNTIME):
        """``threads``: intra-op threads; 0 is ONNX Runtime's default (one per physical core).
        ``name``: which of :data:`ONNX_RUNTIMES` the model file at ``path`` is."""
        import onnxruntime as ort

        self.name = name

        options = ort.SessionOptions()
        # The worker's parallelism is its processes (one per core); the torch thread setting
        # (CLASSIFIER_TORCH_THREADS) applies to this runtime too.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        (logits,) = self.session.run(None, {self._input: batch})
        return np.asarray(logits)
