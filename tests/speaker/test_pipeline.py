"""ExcursionPipeline: frames from a Source -> excursion blocks; gaps reset the model's history."""


from pathlib import Path

import numpy as np
import pytest

from edgesense.errors import ProfileError
from edgesense.profiles import SpeakerIVProfile, SpeakerParams, load_profile
from edgesense.speaker.pipeline import ExcursionPipeline, load_signals
from edgesense.speaker.streaming import predict_signal
from edgesense.stream import SimulatedSource

PROFILE = SpeakerIVProfile(name="t", channels=("v", "i", "x"), speaker=SpeakerParams(bl=0.9))


def _payloads(n_frames, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames * 48) / 48_000
    v = 3 * np.sin(2 * np.pi * 500 * t) + 0.5 * rng.standard_normal(len(t))
    i = v / 8
    x = 0.1 * np.sin(2 * np.pi * 500 * t)
    return np.stack([v, i, x], -1).astype(np.float32).reshape(n_frames, 48, 3)


def test_pipeline_over_a_source_equals_whole_signal_prediction(onnx_model):
    pay = _payloads(40)
    src = SimulatedSource(PROFILE, lambda k: pay[k], speed=None, max_frames=40)
    pipe = ExcursionPipeline(PROFILE, onnx_model)
    with src:
        blocks = list(pipe.run(src))
    assert [b.seq for b in blocks] == list(range(40)) and not any(b.reset for b in blocks)
    got = np.concatenate([b.x for b in blocks])
    flat = pay.reshape(-1, 3)
    ref = predict_signal(pipe.streamer, flat[:, 0], flat[:, 1], bl=0.9)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-4)


def test_gap_resets_history(onnx_model):
    pay = _payloads(30, seed=1)

    class DropFrame10:
        def mask(self, n, rng):
            m = np.zeros(n, bool)
            m[10] = True
            return m

    src = SimulatedSource(PROFILE, lambda k: pay[k], speed=None, max_frames=30, drops=DropFrame10())
    pipe = ExcursionPipeline(PROFILE, onnx_model)
    with src:
        blocks = list(pipe.run(src))
    assert [b.seq for b in blocks][9:11] == [9, 11]
    assert blocks[10].reset and pipe.resets == 1
    # after the gap the prediction equals a fresh start on the frames after the gap
    flat = pay[11:].reshape(-1, 3)
    fresh = predict_signal(pipe.streamer, flat[:, 0], flat[:, 1], bl=0.9)
    np.testing.assert_allclose(np.concatenate([b.x for b in blocks[10:]]), fresh, atol=1e-5, rtol=1e-4)


def test_wrong_profile_and_recording_loading(onnx_model, tmp_path):
    with pytest.raises(ProfileError):
        ExcursionPipeline(load_profile("ad60"), onnx_model)
    from edgesense.recording import RecordingWriter

    pay = _payloads(5)
    path = tmp_path / "r.esr"
    with RecordingWriter(path, PROFILE, metadata={"subject": "s"}) as w:
        w.write_batch(np.arange(5, dtype=np.uint32), np.arange(5, dtype=np.int64) * 1000, pay)
    (sig,) = load_signals(path)
    np.testing.assert_array_equal(sig.v, pay[..., 0].reshape(-1))
    np.testing.assert_array_equal(sig.x, pay[..., 2].reshape(-1))
    assert sig.speaker.bl == 0.9


def test_eval_excursion_reports_zero_reference_and_models(onnx_model, tmp_path):
    """`edgesense eval excursion` core: rows per method and scenario; the zero row is exact."""
    from edgesense.cli.cmd_eval_excursion import evaluate_excursion, format_table
    from edgesense.speaker.pipeline import SpeakerSignal

    pay = _payloads(30).reshape(-1, 3)
    sigs = [SpeakerSignal(f"r{k}", pay[:, 0], pay[:, 1], pay[:, 2] * (k + 1), PROFILE, {"scenario": sc})
            for k, sc in enumerate(["nominal", "hot"])]
    report = evaluate_excursion(sigs, [str(onnx_model)], baselines=False)
    rows = {(r["method"], r["scenario"]): r for r in report["rows"]}
    assert set(rows) == {(m, s) for m in ("zero", "fftnet") for s in ("hot", "nominal", "all")}
    x = sigs[1].x
    assert rows[("zero", "hot")]["nrmse"] == pytest.approx(np.sqrt(np.mean(x.astype(np.float64) ** 2)) / np.abs(x).max(),
                                                            rel=1e-5)
    assert rows[("zero", "hot")]["peak_error_mm"] == pytest.approx(np.abs(x).max(), rel=1e-6)
    assert rows[("fftnet", "all")]["samples"] == 2 * len(x)
    assert "zero" in format_table(report)


@pytest.mark.slow
def test_eval_plot(onnx_model, tmp_path):
    from edgesense.cli.cmd_eval_excursion import evaluate_excursion
    from edgesense.speaker.pipeline import SpeakerSignal

    pay = _payloads(30).reshape(-1, 3)
    sig = SpeakerSignal("r", pay[:, 0], pay[:, 1], pay[:, 2], PROFILE, {})
    evaluate_excursion([sig], [str(onnx_model)], baselines=False, plot=str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_int8_hybrid_pipeline_direct_path_equals_generic_path():
    """Hybrid INT8 TFLite with the tracker in the loop: direct interpreter path == Model.run path, exactly."""
    from pathlib import Path

    from edgesense.runtime import load_model

    path = Path(__file__).resolve().parents[2] / "models" / "hybrid" / "hybrid_int8.tflite"
    if not path.is_file():
        pytest.skip("no shipped INT8 hybrid")
    model = load_model(path)
    profile = load_profile("speaker-ref")
    rng = np.random.default_rng(4)
    n = 600                                   # 0.6 s: the tracker's first refits happen inside
    t = np.arange(n * 48) / 48_000
    v = 3 * np.sin(2 * np.pi * 700 * t) + 1.5 * rng.standard_normal(t.size)
    pay = np.zeros((n, 48, len(profile.channels)), np.float32)
    pay[..., profile.channel_index("v")] = v.reshape(n, 48)
    pay[..., profile.channel_index("i")] = (v / 8 + 0.001 * rng.standard_normal(t.size)).reshape(n, 48)
    results = []
    for direct in (True, False):
        pipe = ExcursionPipeline(profile, model, direct=direct)
        assert (pipe.streamer._direct is not None) == direct and pipe.tracker is not None
        src = SimulatedSource(profile, lambda k: pay[k], speed=None, max_frames=n)
        with src:
            results.append(np.concatenate([b.x for b in pipe.run(src)]))
    assert results[0].shape == (n * 48,) and np.abs(results[0]).max() > 0.01
    np.testing.assert_array_equal(results[0], results[1])


def test_track_cache_is_keyed_by_the_tracker(tmp_path, monkeypatch):
    """EDGESENSE_TRACK_CACHE: a second run reads the cache; another tracker configuration never does."""
    import dataclasses

    from edgesense.speaker import pipeline as sp
    from edgesense.speaker.tracking import ImpedanceTracker

    profile = load_profile("speaker-ref")
    rng = np.random.default_rng(3)
    v = (0.5 * rng.standard_normal(4800)).astype(np.float32)
    i = (v / 8.0).astype(np.float32)
    monkeypatch.setenv(sp.TRACK_CACHE_ENV, str(tmp_path))
    first = sp.tracked_prediction(v, i, profile)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    np.testing.assert_array_equal(sp.tracked_prediction(v, i, profile), first)
    assert len(list(tmp_path.glob("*.npy"))) == 1                       # read back, not recomputed

    other = dataclasses.replace(sp.make_tracker(profile).config, bl_anchor="bl")
    monkeypatch.setattr(sp, "make_tracker", lambda p: ImpedanceTracker(p.speaker, fs=p.sample_rate_hz, config=other))
    sp.tracked_prediction(v, i, profile)
    assert len(list(tmp_path.glob("*.npy"))) == 2                       # a new key for the other tracker


CALIBRATION = Path(__file__).resolve().parents[2] / "models" / "speaker_calibration" / "ref.json"


def _iv_source(n_frames, drop=None):
    ref = load_profile("speaker-ref")
    pay = _payloads(n_frames, seed=4)[:, :, :2].copy()     # v, i as the profile's channels
    drops = None
    if drop is not None:
        class Drop:
            def mask(self, n, rng):
                m = np.zeros(n, bool)
                m[drop] = True
                return m
        drops = Drop()
    return ref, pay, SimulatedSource(ref, lambda k: pay[k], speed=None, max_frames=n_frames, drops=drops)


def test_pipeline_runs_a_large_signal_calibration_like_the_whole_signal():
    """A calibration .json in place of a network: the estimator, with its tracker, over frames of any
    source equals the whole-signal prediction (across the tracker's 0.256 s update boundary)."""
    from edgesense.speaker.largesignal import load_calibration, predict_large_signal

    if not CALIBRATION.is_file():
        pytest.skip("models/speaker_calibration not shipped")
    ref, pay, src = _iv_source(300)
    pipe = ExcursionPipeline(ref, CALIBRATION)
    assert pipe.streamer is None and pipe.estimator.follow
    with src:
        blocks = list(pipe.run(src))
    flat = pay.reshape(-1, 2).astype(np.float64)
    whole = predict_large_signal(flat[:, 0], flat[:, 1], load_calibration(CALIBRATION), ref.speaker)
    np.testing.assert_array_equal(np.concatenate([b.x for b in blocks]), whole)
    assert np.max(np.abs(whole)) > 0.01
    with pytest.raises(ProfileError, match="own Bl"):
        ExcursionPipeline(ref, CALIBRATION, bl=1.0)


def test_a_gap_resets_the_large_signal_estimator():
    from edgesense.speaker.largesignal import load_calibration, predict_large_signal

    if not CALIBRATION.is_file():
        pytest.skip("models/speaker_calibration not shipped")
    ref, pay, src = _iv_source(60, drop=20)
    pipe = ExcursionPipeline(ref, CALIBRATION)
    with src:
        blocks = list(pipe.run(src))
    assert blocks[20].seq == 21 and blocks[20].reset and pipe.resets == 1
    after = pay[21:].reshape(-1, 2).astype(np.float64)
    fresh = predict_large_signal(after[:, 0], after[:, 1], load_calibration(CALIBRATION), ref.speaker)
    np.testing.assert_array_equal(np.concatenate([b.x for b in blocks[20:]]), fresh)


def test_load_signals_spread_samples_every_speaker_and_condition():
    sample = Path(__file__).parents[2] / "datasets" / "samples" / "speaker"   # lite4_*, then ref_* in path order
    first = [Path(s.name).parent.name for s in load_signals(sample, "train", limit=2)]
    spread = [Path(s.name).parent.name for s in load_signals(sample, "train", limit=2, spread=True)]
    assert first == ["lite4_hot", "lite4_leak"]                  # the first ones: one speaker only
    assert spread == ["lite4_hot", "ref_nominal"]                # both ends of the index: both speakers
    every = [s.name for s in load_signals(sample, "train", limit=6, spread=True)]
    assert every == [s.name for s in load_signals(sample, "train")]   # limit >= size: all, in order
