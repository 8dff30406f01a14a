"""int8 models with ONNX Runtime's quantiser: dynamic (weights only, activations quantised on the fly)
or static (activations calibrated on images of the training split), QDQ format, per-channel weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch

QUANTIZE = ("dynamic", "static")


class ImageBatches:
    """ONNX Runtime's CalibrationDataReader over normalised image batches."""

    def __init__(self, input_name: str, batches: Iterable[torch.Tensor]):
        self.input_name, self.batches = input_name, iter(batches)

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {self.input_name: batch.numpy().astype(np.float32)}


def quantize(fp32: Path, out: Path, mode: str, calibration: Optional[Iterable[torch.Tensor]] = None) -> Path:
    """``calibration``: normalised image batches (static only)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = out.with_name(out.stem + ".prep.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    try:
        if mode == "dynamic":
            quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8, per_channel=True)
        else:
            input_name = onnx.load(str(prepared), load_external_data=False).graph.input[0].name
            if calibration is None:
                raise ValueError("static quantisation needs calibration batches")
            quantize_static(str(prepared), str(out), ImageBatches(input_name, calibration),
                            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
    finally:
        prepared.unlink(missing_ok=True)
    source, target = onnx.load(str(fp32), load_external_data=False), onnx.load(str(out))
    del target.metadata_props[:]
    for prop in source.metadata_props:  # the preprocessing travels with the int8 model too
        target.metadata_props.add(key=prop.key, value=prop.value)
    target.metadata_props.add(key="quantization", value=json.dumps(mode))
    onnx.save(target, str(out))
    return out
