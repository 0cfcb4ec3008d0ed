"""Rewrites a loaded model for inference: the same outputs (to float rounding), less work per
forward pass.

Two rewrites of the model's traced graph (``torch.fx``), both exact in real arithmetic:

* every BatchNorm that only normalises a convolution's output is folded into that convolution's
  weights and bias, so the normalisation costs nothing at run time;
* a ReLU or ReLU6 whose input nobody else reads runs in place, without a new tensor;
* a convolution that zero-pads its input symmetrically before convolving (EfficientNet-Lite's
  static 'same' padding) pads inside the convolution instead, without a padded copy.

Tracing patches ``torch.nn.Module.__call__`` for the whole process while it runs, so a model
running in another thread meanwhile fails ("module is not installed as a submodule"). Rewrites
therefore run alone: :func:`for_inference` holds :data:`RUNNING` (:mod:`classifier_worker.running`)
exclusively, and everything that runs a model holds it shared, as ``LoadedModel.predict`` does.
One process normally loads its models before it runs any, but two apps in one process (tests,
an embedded gateway beside another) need it.

For efficientnet_lite0 on one CPU thread the first two took the forward pass from 20.3 to
16.5 ms, the third from 20.4 to 18.9 ms (docs/performance.md). A model that cannot be traced is used as it is.
"""

from __future__ import annotations

import logging
from collections import Counter

from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from classifier_worker.running import RUNNING, SharedExclusive

log = logging.getLogger(__name__)

_IN_PLACE = {nn.ReLU: nn.functional.relu, nn.ReLU6: nn.functional.relu6}


class _Tracer(fx.Tracer):
    """Keeps every convolution whole, subclasses too (a 'same'-padding Conv2d would otherwise be
    traced into its padding and an F.conv2d call, and its BatchNorm could not be folded)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, nn.Conv2d) or super().is_leaf_module(m, module_qualified_name)


def for_inference(module: nn.Module) -> nn.Module:
    """``module`` rewritten as above (in eval mode; its convolutions' weights are changed in place,
    so use only what this returns), or ``module`` itself if it cannot be traced."""
    module.eval()
    with RUNNING.exclusive():
        try:
            graph_module = fx.GraphModule(module, _Tracer().trace(module))
        except Exception as exc:  # noqa: BLE001 - any tracing failure just means: run it unrewritten
            log.warning("model not rewritten for inference: %s", exc)
            return module
        folded = _fold_batch_norms(graph_module)
        in_place = _activations_in_place(graph_module)
        padded = _padding_in_convolutions(graph_module)
        graph_module.delete_all_unused_submodules()  # the folded BatchNorms, the replaced activations
        graph_module.graph.lint()
        graph_module.recompile()
    graph_module.eval()
    log.debug(
        "rewritten for inference",
        extra={"batch_norms_folded": folded, "activations_in_place": in_place, "paddings_moved": padded},
    )
    return graph_module


def _fold_batch_norms(gm: fx.GraphModule) -> int:
    modules = dict(gm.named_modules())
    calls = Counter(node.target for node in gm.graph.nodes if node.op == "call_module")
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        conv_node = node.args[0]
        if not _called(modules, conv_node, nn.Conv2d):
            continue
        conv, bn = modules[conv_node.target], modules[node.target]
        # The convolution must feed only this BatchNorm and run only here, or folding would change
        # what its other readers see.
        if len(conv_node.users) != 1 or calls[conv_node.target] != 1 or not bn.track_running_stats:
            continue
        conv.weight, conv.bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
        node.replace_all_uses_with(conv_node)
        gm.graph.erase_node(node)
        folded += 1
    return folded


def _called(modules: dict[str, nn.Module], node: object, *kinds: type[nn.Module]) -> bool:
    """``node`` calls a module of one of ``kinds`` (subclasses too, such as a 'same'-padding Conv2d)."""
    return isinstance(node, fx.Node) and node.op == "call_module" and isinstance(modules[str(node.target)], kinds)


def _activations_in_place(gm: fx.GraphModule) -> int:
    modules = dict(gm.named_modules())
    changed = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or type(modules[node.target]) not in _IN_PLACE:
            continue
        (source,) = node.args
        # In place only over a fresh tensor (a layer's output, never a view of another) that this
        # activation alone reads.
        if not _called(modules, source, nn.Conv2d, nn.BatchNorm2d, nn.Linear) or len(source.users) != 1:
            continue
        with gm.graph.inserting_after(node):
            replacement = gm.graph.call_function(_IN_PLACE[type(modules[node.target])], (source,), {"inplace": True})
        node.replace_all_uses_with(replacement)
        gm.graph.erase_node(node)
        changed += 1
    return changed


def _padding_in_convolutions(gm: fx.GraphModule) -> int:
    moved = 0
    for node in gm.graph.nodes:
        conv = gm.get_submodule(node.target) if node.op == "call_module" else None
        pad = getattr(conv, "static_padding", None)
        if not (isinstance(conv, nn.Conv2d) and isinstance(pad, nn.ZeroPad2d) and conv.padding == (0, 0)):
            continue
        left, right, top, bottom = pad.padding
        if left != right or top != bottom:
            continue  # asymmetric (stride 2): a Conv2d pads both sides alike
        (kernel_h, kernel_w), (stride_h, stride_w) = conv.kernel_size, conv.stride
        dilation_h, dilation_w = conv.dilation
        plain = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            (kernel_h, kernel_w),
            stride=(stride_h, stride_w),
            padding=(top, left),
            dilation=(dilation_h, dilation_w),
            groups=conv.groups,
            bias=conv.bias is not None,
        )
        plain.weight, plain.bias = conv.weight, conv.bias
        parent, _, name = node.target.rpartition(".")
        setattr(gm.get_submodule(parent), name, plain)
        moved += 1
    return moved


__all__ = ["RUNNING", "SharedExclusive", "for_inference"]
