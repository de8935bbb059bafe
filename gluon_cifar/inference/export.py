"""Take a trained network out of the training code: MXNet symbol + params, or ONNX.

Each export is checked on real images before it is reported as done: the exported model is
reloaded (SymbolBlock or onnxruntime) and its logits compared with the trained network's.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..atomic import atomic_path, write_text
from ..errors import GluonCifarError

ONNX_TOLERANCE = 1e-4  # max abs difference of logits between MXNet and onnxruntime
INPUT_SHAPE = (3, 32, 32)


@dataclass
class ExportCheck:
    format: str
    files: list[str]
    images: int
    max_abs_diff: float
    same_classes: bool
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.same_classes and self.max_abs_diff <= self.tolerance


def export_mxnet(net: gluon.HybridBlock, prefix: str) -> tuple[str, str]:
    """`prefix-symbol.json` and `prefix-0000.params` through HybridBlock.export."""
    net.hybridize()
    net(mx.nd.zeros((1, *INPUT_SHAPE), ctx=_context(net)))  # export needs one traced forward
    net.export(prefix, epoch=0)
    return f"{prefix}-symbol.json", f"{prefix}-0000.params"


def load_mxnet(symbol_file: str, params_file: str, ctx: mx.Context = mx.cpu()) -> gluon.SymbolBlock:
    return gluon.SymbolBlock.imports(symbol_file, ["data"], params_file, ctx=ctx)


def export_onnx(net: gluon.HybridBlock, path: str) -> str:
    """ONNX with a dynamic batch dimension (input `data`, shape [N, 3, 32, 32])."""
    try:
        import onnx  # noqa: F401  (mx.onnx needs it; fail here with the fix rather than deep inside)
    except ImportError:
        raise GluonCifarError("ONNX export needs the export extra: pip install -e '.[export]'") from None
    workdir = tempfile.mkdtemp(prefix="gluon_cifar_export_")
    try:
        symbol_file, params_file = export_mxnet(net, os.path.join(workdir, "net"))
        with atomic_path(path) as tmp:
            mx.onnx.export_model(symbol_file, params_file, in_shapes=[(1, *INPUT_SHAPE)], in_types=np.float32,
                                 onnx_file_path=tmp, dynamic=True, dynamic_input_shapes=[(None, *INPUT_SHAPE)])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return path


def onnx_logits(path: str, images: np.ndarray) -> np.ndarray:
    try:
        import onnxruntime
    except ImportError:
        raise GluonCifarError("checking an ONNX export needs onnxruntime: see the README's export section") from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # mx2onnx keeps initializers as inputs: silence that warning
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images.astype(np.float32)})[0]


def compare(fmt: str, files: list[str], reference: np.ndarray, exported: np.ndarray, tolerance: float) -> ExportCheck:
    return ExportCheck(fmt, files, len(reference), float(np.abs(reference - exported).max()),
                       bool((reference.argmax(axis=1) == exported.argmax(axis=1)).all()), tolerance)


def export_files(fmt: str, out: str) -> list[str]:
    """The files `export_and_check(net, fmt, out, ...)` writes."""
    files = [out] if fmt == "onnx" else [f"{out}-symbol.json", f"{out}-0000.params"]
    return files + [out + ".check.json"]


def export_and_check(net: gluon.HybridBlock, fmt: str, out: str, images: mx.nd.NDArray) -> ExportCheck:
    """Export `net` as `fmt` to `out` (a prefix for mxnet, a .onnx path for onnx), then check it.

    The check is also written beside the export as `<out>.check.json`.
    """
    ctx = _context(net)
    reference = net(images.as_in_context(ctx)).asnumpy()
    if fmt == "mxnet":
        files = list(export_mxnet(net, out))
        exported = load_mxnet(*files, ctx=ctx)(images.as_in_context(ctx)).asnumpy()
        check = compare(fmt, files, reference, exported, tolerance=0.0)  # same engine, same kernels
    elif fmt == "onnx":
        files = [export_onnx(net, out)]
        check = compare(fmt, files, reference, onnx_logits(files[0], images.asnumpy()), ONNX_TOLERANCE)
    else:
        raise GluonCifarError(f"unknown export format {fmt!r}; choose mxnet or onnx")
    write_text(out + ".check.json", json.dumps({**asdict(check), "passed": check.passed}, indent=2) + "\n")
    return check


def _context(net: gluon.Block) -> mx.Context:
    return next(iter(net.collect_params().values())).list_ctx()[0]
