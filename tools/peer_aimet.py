"""Quantize a float ONNX model with aimet-onnx (the optional peer of issue 6) and write a QDQ INT8 ONNX model.

aimet-onnx is not a dependency of edgesense: it needs torch and, left to its own resolver, several GB of CUDA
wheels. Install it into a separate virtual environment beside the project, keeping the CPU torch pin::

    python3 -m venv ../aimet-venv
    ../aimet-venv/bin/pip install torch==2.13.0
    ../aimet-venv/bin/pip install --no-deps aimet-onnx==2.42.0 onnx2torch
    ../aimet-venv/bin/pip install Jinja2 PyYAML bokeh hvplot jsonschema numpy onnx onnx_ir onnxruntime onnxscript \
        osqp pandas psutil pybind11 scikit-learn scipy tqdm

then run this script with that interpreter (it imports nothing from edgesense, so the two environments stay
apart)::

    ../aimet-venv/bin/python tools/peer_aimet.py --model models/gesture_cnn/gesture_cnn.onnx \
        --calib calib.npy --out /tmp/gesture_cnn_aimet_tf_enhanced.onnx --scheme tf_enhanced

``--calib`` is a float32 ``.npy`` (loaded with ``allow_pickle=False``) holding samples of the model's first input
stacked on axis 0 -- the same array ``tools/compare_peers.py`` gives onnxruntime's ``quantize_static``; any further
inputs (the streaming excursion models' state) are fed zeros, as for the onnxruntime peer. Settings follow
aimet's own recipe for a fair comparison: batch-norm folding, optionally cross-layer equalisation (``--cle``),
per-channel weights (aimet's ``default_config_per_channel.json``), 8-bit weights and activations, range setting by
``min_max``, ``tf_enhanced`` (aimet's SQNR search) or ``percentile``, optionally AdaRound (``--adaround N``
iterations). The written model is aimet's ``to_onnx_qdq`` export with signed int8 activations; score it with the
pipelines' own commands (``edgesense eval gesture|excursion --model OUT.onnx``) or ``tools/build_zoo.py
--aimet-python ../aimet-venv/bin/python``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

SCHEMES = {"min_max": "min_max", "tf_enhanced": "post_training_tf_enhanced", "percentile": "post_training_percentile"}


def _feeds(model, calib, batch: int) -> list[dict]:
    import numpy as np
    import onnxruntime as ort

    ins = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).get_inputs()
    zeros = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32) for i in ins[1:]}
    step = 1 if zeros else batch
    return [{ins[0].name: calib[k:k + step], **zeros} for k in range(0, len(calib), step)]


def quantize(model_path: Path, calib_path: Path, out: Path, scheme: str, cle: bool, adaround: int,
             batch: int = 32) -> dict:
    """Quantize ``model_path`` with aimet-onnx and save the QDQ model at ``out``; returns a summary."""
    import numpy as np
    import onnx
    from aimet_onnx import apply_adaround
    from aimet_onnx.batch_norm_fold import fold_all_batch_norms_to_weight
    from aimet_onnx.common.defs import QuantScheme
    from aimet_onnx.cross_layer_equalization import equalize_model
    from aimet_onnx.quantsim import QuantizationSimModel

    import aimet_onnx

    t0 = time.time()
    model = onnx.load(str(model_path))
    calib = np.load(calib_path, allow_pickle=False).astype(np.float32)
    if cle:
        equalize_model(model)                    # folds batch norms, then scales and high-bias folds
    else:
        fold_all_batch_norms_to_weight(model)
    config = Path(aimet_onnx.__file__).parent / "common" / "quantsim_config" / "default_config_per_channel.json"
    feeds = _feeds(model, calib, batch)
    sim = QuantizationSimModel(model, param_type="int8", activation_type="int8",
                               quant_scheme=getattr(QuantScheme, SCHEMES[scheme]), config_file=str(config),
                               providers=["CPUExecutionProvider"])
    if adaround:
        apply_adaround(sim, feeds, num_iterations=adaround)
    sim.compute_encodings(feeds)
    qdq = sim.to_onnx_qdq(force_activation_as="signed")
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(qdq, str(out))
    return {"model": str(model_path), "out": str(out), "scheme": scheme, "cle": cle, "adaround": adaround,
            "calibration_samples": int(len(calib)), "aimet_onnx": getattr(aimet_onnx, "__version__", "?"),
            "seconds": round(time.time() - t0, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="float ONNX model")
    p.add_argument("--calib", type=Path, required=True, help="calibration samples of the first input (.npy)")
    p.add_argument("--out", type=Path, required=True, help="QDQ INT8 ONNX model to write")
    p.add_argument("--scheme", choices=sorted(SCHEMES), default="tf_enhanced",
                   help="activation range setting (default tf_enhanced, aimet's SQNR search)")
    p.add_argument("--cle", action="store_true", help="cross-layer equalisation before quantization")
    p.add_argument("--adaround", type=int, default=0, metavar="N", help="AdaRound iterations (0: round to nearest)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)
    try:
        import aimet_onnx  # noqa: F401
    except ImportError:
        print("error: aimet-onnx is not installed in this interpreter (see this script's docstring)", file=sys.stderr)
        return 2
    for path in (args.model, args.calib):
        if not path.is_file():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    summary = quantize(args.model, args.calib, args.out, args.scheme, args.cle, args.adaround)
    print(json.dumps(summary) if args.json else f"wrote {summary['out']} ({summary['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
