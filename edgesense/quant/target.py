"""Target profiles: what an integer runtime or accelerator supports, as typed data.

One float model is quantized for different targets by passing a different :class:`TargetProfile`
(MQBench's per-backend ``ParamsTable`` idea, reference quantization.md §4.14, §5.5): weights per
channel or per tensor, int8 or uint8 activations, and how the runtime rounds when it requantizes an
int32 accumulator (ONNX Runtime's MLAS multiplies by a float32 scale and rounds half to even;
TFLite/CMSIS-NN use a Q31 fixed-point multiplier and a rounding right shift that rounds ties away from zero).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgesense.errors import EdgesenseError

__all__ = ["TargetProfile", "TARGETS", "get_target"]


@dataclass(frozen=True)
class TargetProfile:
    """What a target runs: the quantization scheme the simulation and exporters must respect."""

    name: str
    activation_dtype: str = "int8"          # "int8" ([-128, 127]) or "uint8" ([0, 255]), per-tensor asymmetric
    per_channel_weights: bool = True        # False: per-tensor-only hardware
    weight_bitwidth: int = 8                # weights symmetric in [-(2^(b-1)-1), 2^(b-1)-1]
    activation_bitwidth: int = 8
    requantization: str = "float"           # "float": f32 multiplier, half-even (ORT); "fixed_point": Q31, half-away (TFLite)
    description: str = ""

    def __post_init__(self) -> None:
        if self.activation_dtype not in ("int8", "uint8"):
            raise EdgesenseError(f"target {self.name!r}: activation_dtype must be int8 or uint8")
        if self.requantization not in ("float", "fixed_point"):
            raise EdgesenseError(f"target {self.name!r}: requantization must be 'float' or 'fixed_point'")
        for bits in (self.weight_bitwidth, self.activation_bitwidth):
            if not 2 <= bits <= 8:
                raise EdgesenseError(f"target {self.name!r}: bit widths must be in 2..8, got {bits}")


TARGETS: dict[str, TargetProfile] = {t.name: t for t in (
    TargetProfile("ort-cpu", "int8", True, weight_bitwidth=7, requantization="float",
                  description="ONNX Runtime CPU on any x86: 7-bit weights (ORT's reduce_range). Without VNNI, "
                              "MLAS runs u8 x s8 products in saturating int16 pairs, so full 8-bit weights are "
                              "not computed exactly (measured: up to 62 LSB off)"),
    TargetProfile("ort-cpu-u8", "uint8", True, weight_bitwidth=7, requantization="float",
                  description="ONNX Runtime CPU with U8 activations, 7-bit weights"),
    TargetProfile("ort-cpu-w8", "int8", True, weight_bitwidth=8, requantization="float",
                  description="ONNX Runtime CPU with full 8-bit weights: exact everywhere when the session sets "
                              "session.x64quantprecision=1 (edgesense.runtime does), which makes x86 without VNNI "
                              "use ORT's u8 x u8 kernels instead of the saturating u8 x s8 ones"),
    TargetProfile("ort-vnni", "int8", True, weight_bitwidth=8, requantization="float",
                  description="ONNX Runtime on ARM64 or x86 with AVX-512 VNNI / AVX-VNNI: full 8-bit weights"),
    TargetProfile("tflite-int8", "int8", True, weight_bitwidth=8, requantization="float",
                  description="LiteRT full-integer with the default XNNPACK delegate (float32 requantization, "
                              "half-even: measured closest)"),
    TargetProfile("tflite-micro", "int8", True, weight_bitwidth=8, requantization="fixed_point",
                  description="TFLite reference kernels, TFLite Micro and CMSIS-NN (Q31 fixed-point requantization)"),
    TargetProfile("per-tensor-int8", "int8", False, weight_bitwidth=8, requantization="fixed_point",
                  description="NPUs that only run 8-bit per-tensor weights (e.g. STM32MP2 NPU)"),
)}


def get_target(name: str | TargetProfile) -> TargetProfile:
    """A built-in target by name (or the profile itself)."""
    if isinstance(name, TargetProfile):
        return name
    try:
        return TARGETS[name]
    except KeyError:
        raise EdgesenseError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}") from None
