"""Loading what ``edgesense quantize`` and ``edgesense bench`` are given: float models and calibration inputs.

* A float ``.onnx`` is imported directly (:meth:`QuantSim.from_onnx`).
* A ``.pt`` state_dict needs the registry architecture name (``--arch``) and its constructor arguments:
  from ``--arch-args`` JSON, or from the JSON sidecar the trainers write next to the model (a gesture
  model's ``GestureModelInfo`` gives ``in_channels``, ``rows``, ``frames``, ``num_classes``).
* Calibration inputs are ``.npy`` arrays of model inputs ``(N, ...)`` -- one file, or every ``*.npy`` in a
  directory (``allow_pickle=False``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgesense.errors import EdgesenseError, FormatError, ModelError

__all__ = ["load_calibration_inputs", "architecture_args", "load_torch_model", "is_dataset_dir",
           "excursion_calibration_signals", "excursion_training_data"]


def is_dataset_dir(path: str | Path) -> bool:
    """True for an edgesense dataset directory (recordings plus ``index.json``)."""
    return Path(path).is_dir() and (Path(path) / "index.json").is_file()


def excursion_calibration_signals(dataset: str | Path, model_path: str | Path, split: str = "train",
                                  max_signals: int = 12, steps: int = 3000, seed: int = 0) -> np.ndarray:
    """Framed network inputs ``(N, C*frame, steps)`` of an excursion model from a speaker dataset split.

    Uses the model's own description (``<model>.json``: inputs, frame, scales) and the speaker pipeline's
    framing (:func:`edgesense.nn.train_excursion.prepare_inputs`; hybrids run the impedance tracker), one
    crop of ``steps`` frames per recording, ``max_signals`` recordings spread evenly over the split (every
    speaker and condition, not the first ones in path order).
    """
    from edgesense.nn.train_excursion import prepare_inputs
    from edgesense.speaker.pipeline import load_signals
    from edgesense.speaker.streaming import load_spec

    spec = load_spec(model_path)
    signals = load_signals(dataset, split=split, limit=max_signals, spread=True)
    if not signals:
        raise FormatError(f"{dataset}: no recordings in split {split!r}")
    rng = np.random.default_rng(seed)
    crops = []
    for sig in signals:
        x = prepare_inputs(spec, sig)[0]
        if x.shape[-1] < steps:
            continue
        t0 = int(rng.integers(0, x.shape[-1] - steps + 1))
        crops.append(x[:, t0:t0 + steps])
    if not crops:
        raise FormatError(f"{dataset}: recordings are shorter than {steps} frames")
    return np.stack(crops).astype(np.float32)


def excursion_training_data(dataset: str | Path, model_path: str | Path, split: str = "train",
                            max_signals: int = 24) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Framed inputs ``(C*frame, steps)`` and targets ``(frame, steps)`` of ``max_signals`` labelled recordings
    of ``split`` spread evenly over it, as the excursion trainer builds them (targets scaled with the recording's true Bl,
    :func:`edgesense.nn.train_excursion.training_bl`): the data of a QAT fine-tune."""
    from edgesense.nn.train_excursion import prepare_inputs, training_bl
    from edgesense.speaker.pipeline import load_signals
    from edgesense.speaker.streaming import load_spec

    spec = load_spec(model_path)
    signals = [s for s in load_signals(dataset, split=split, limit=max_signals, spread=True) if s.x is not None]
    if not signals:
        raise FormatError(f"{dataset}: no labelled recordings (with excursion) in split {split!r}")
    xs, ys = [], []
    for sig in signals:
        x = prepare_inputs(spec, sig)[0]
        n = x.shape[-1] * spec.frame
        y = np.asarray(sig.x[:n], np.float64) * (training_bl(sig) / spec.x_scale)
        xs.append(x.astype(np.float32))
        ys.append(np.ascontiguousarray(y.reshape(-1, spec.frame).T, dtype=np.float32))
    return xs, ys


def load_calibration_inputs(path: str | Path, max_samples: int | None = None) -> np.ndarray:
    """Model inputs ``(N, ...)`` float32 from one ``.npy`` or a directory of them."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.npy"))
        if not files:
            raise FormatError(f"{path}: no .npy calibration arrays found (expected model inputs of shape (N, ...))")
    elif path.suffix == ".npy" and path.is_file():
        files = [path]
    else:
        raise FormatError(f"{path}: calibration data must be a .npy file or a directory of .npy files")
    arrays = []
    for f in files:
        try:
            arrays.append(np.load(f, allow_pickle=False).astype(np.float32))
        except (ValueError, OSError) as exc:
            raise FormatError(f"{f}: not a readable numpy array ({exc})") from None
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) != 1:
        raise FormatError(f"{path}: calibration arrays have different sample shapes {sorted(shapes)}")
    x = np.concatenate(arrays)
    if not len(x):
        raise FormatError(f"{path}: calibration arrays are empty")
    return x[:max_samples] if max_samples else x


def architecture_args(model_path: Path, arch_args: str | None) -> dict[str, Any]:
    """Constructor arguments: ``arch_args`` JSON, else derived from the model's JSON sidecar, else none."""
    if arch_args:
        try:
            out = json.loads(arch_args)
        except json.JSONDecodeError as exc:
            raise EdgesenseError(f"--arch-args is not valid JSON: {exc}") from None
        if not isinstance(out, dict):
            raise EdgesenseError("--arch-args must be a JSON object")
        return out
    sidecar = model_path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    info = json.loads(sidecar.read_text())
    if {"rdi_shape", "frames", "classes"} <= set(info):
        c, d, r = info["rdi_shape"]
        return {"in_channels": c + int(info.get("validity", True)), "rows": d + r, "frames": info["frames"],
                "num_classes": len(info["classes"])}
    return dict(info.get("arch_args", {}))


def load_torch_model(path: Path, arch: str, arch_args: dict[str, Any]):
    """Registry model ``arch`` with a state_dict from ``path`` (``weights_only=True``), in eval mode."""
    import torch

    from edgesense.nn.registry import create_model

    model = create_model(arch, **arch_args)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: not a loadable state_dict ({str(exc).splitlines()[0][:200]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit {arch}({arch_args}): {str(exc).splitlines()[0][:200]}") from None
    return model.eval()
