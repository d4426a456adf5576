"""ddcsad.data: outlier sets, anomaly pools, amplitude normalisation, balanced batches, epochs."""
import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from asdcore.errors import ASDError
from asdcore.features import LogMelConfig, compute_logmel
from ddcsad import data
from ddcsad.losses import ANOMALY, NORMAL, OUTLIER


def clip(part, machine_type, unit, split, label, index):
    name = f"{label}_{unit}_{index:08d}.wav" if split == "test" or part == "dev" else f"normal_{unit}_{index:08d}.wav"
    return {"path": f"/data/{part}_data/{machine_type}/{split}/{name}", "file": name, "year": 2020, "part": part,
            "machine_type": machine_type, "unit": unit, "domain": "", "split": split, "label": label,
            "attributes": "", "index": f"{index:08d}"}


def hand_table():
    """A small DCASE 2020 clip table written out by hand (both parts, both source data sets)."""
    rows = [
        clip("dev", "fan", "id_00", "train", "normal", 0),
        clip("dev", "fan", "id_00", "train", "normal", 1),
        clip("dev", "fan", "id_00", "test", "normal", 0),
        clip("dev", "fan", "id_00", "test", "anomaly", 0),
        clip("dev", "fan", "id_00", "test", "anomaly", 1),
        clip("dev", "fan", "id_00", "test", "anomaly", 2),
        clip("dev", "fan", "id_00", "test", "anomaly", 3),
        clip("dev", "fan", "id_02", "train", "normal", 0),
        clip("dev", "fan", "id_02", "test", "anomaly", 0),
        clip("eval", "fan", "id_01", "train", "normal", 0),
        clip("dev", "pump", "id_00", "train", "normal", 0),
        clip("dev", "valve", "id_04", "train", "normal", 7),
        clip("dev", "ToyCar", "id_01", "train", "normal", 0),
        clip("dev", "ToyCar", "id_01", "test", "normal", 0),
        clip("dev", "ToyCar", "id_02", "train", "normal", 0),
        clip("eval", "ToyConveyor", "id_04", "train", "normal", 0),
    ]
    return pd.DataFrame(rows)


def names(table, rows):
    return sorted(f"{table.part[i]}/{table.machine_type[i]}/{table.split[i]}/{table.file[i]}" for i in rows)


def test_outliers_are_the_other_ids_of_the_same_source_data_set():
    t = hand_table()
    s = data.unit_sets(t, "fan", "id_00")
    assert names(t, s.normal) == ["dev/fan/train/normal_id_00_00000000.wav", "dev/fan/train/normal_id_00_00000001.wav"]
    # other fan IDs (dev and eval parts) and every MIMII type; no ToyADMOS clip, no test clip
    assert names(t, s.outlier) == [
        "dev/fan/train/normal_id_02_00000000.wav",
        "dev/pump/train/normal_id_00_00000000.wav",
        "dev/valve/train/normal_id_04_00000007.wav",
        "eval/fan/train/normal_id_01_00000000.wav",
    ]
    assert names(t, s.test) == ["dev/fan/test/anomaly_id_00_00000000.wav", "dev/fan/test/anomaly_id_00_00000001.wav",
                                "dev/fan/test/anomaly_id_00_00000002.wav", "dev/fan/test/anomaly_id_00_00000003.wav",
                                "dev/fan/test/normal_id_00_00000000.wav"]
    assert len(s.anomaly) == 0 and s.part == "dev" and s.key == "fan/id_00"

    toy = data.unit_sets(t, "ToyCar", "id_01")
    assert names(t, toy.normal) == ["dev/ToyCar/train/normal_id_01_00000000.wav"]
    assert names(t, toy.outlier) == ["dev/ToyCar/train/normal_id_02_00000000.wav",
                                     "eval/ToyConveyor/train/normal_id_04_00000000.wav"]
    # an eval ID's model: outliers include the dev IDs' training clips
    ev = data.unit_sets(t, "fan", "id_01")
    assert ev.part == "eval"
    assert "dev/fan/train/normal_id_00_00000000.wav" in names(t, ev.outlier)


def test_labels_of_the_training_rows():
    t = hand_table()
    pool = data.anomaly_pool(t, [("dev", "fan", "id_00")], size=64, max_fraction=0.5, seed=3)
    s = data.unit_sets(t, "fan", "id_00", pool, n_anomalies=2)
    idx, y = s.train_indices_and_labels()
    assert list(y) == [NORMAL] * 2 + [OUTLIER] * 4 + [ANOMALY] * 2
    assert set(idx[y == ANOMALY]) <= set(np.flatnonzero((t.label == "anomaly").to_numpy()))


def test_bad_units_raise():
    t = hand_table()
    with pytest.raises(ASDError):
        data.unit_sets(t, "fan", "id_99")  # no training clips
    only_one = t[t.machine_type == "ToyCar"].query("unit == 'id_01'").reset_index(drop=True)
    with pytest.raises(ASDError):
        data.unit_sets(only_one, "ToyCar", "id_01")  # no outliers
    with pytest.raises(ASDError):
        data.source_dataset("gearbox")
    assert data.source_dataset("ToyConveyor") == "ToyADMOS" and data.source_dataset("valve") == "MIMII"


def test_select_units():
    t = hand_table()
    assert data.select_units(t) == [("dev", "ToyCar", "id_01"), ("dev", "ToyCar", "id_02"), ("dev", "fan", "id_00"),
                                    ("dev", "fan", "id_02"), ("dev", "pump", "id_00"), ("dev", "valve", "id_04"),
                                    ("eval", "ToyConveyor", "id_04"), ("eval", "fan", "id_01")]
    assert data.select_units(t, parts=("dev",), units_per_type=1, machine_types=("fan", "ToyCar")) == [
        ("dev", "ToyCar", "id_01"), ("dev", "fan", "id_00")]


def test_anomaly_pool_size_nesting_and_evaluation_set():
    t = hand_table()
    units = [("dev", "fan", "id_00"), ("dev", "fan", "id_02")]
    pool = data.anomaly_pool(t, units, size=64, max_fraction=0.75, seed=0)
    assert len(pool["fan/id_00"]) == 3  # floor(0.75 * 4) of the 4 anomalous test clips
    assert len(pool["fan/id_02"]) == 0  # floor(0.75 * 1)
    assert len(data.anomaly_pool(t, units, size=2, max_fraction=1.0)["fan/id_00"]) == 2  # the paper's cap (64)
    assert np.array_equal(pool["fan/id_00"], data.anomaly_pool(t, units, 64, 0.75, seed=0)["fan/id_00"])
    anomalous = set(np.flatnonzero(((t.label == "anomaly") & (t.unit == "id_00")).to_numpy()))
    assert set(pool["fan/id_00"]) <= anomalous
    for k in (0, 1, 2, 3):
        s = data.unit_sets(t, "fan", "id_00", pool, n_anomalies=k)
        assert list(s.anomaly) == list(pool["fan/id_00"][:k])  # nested: the first k
        assert not set(s.test) & set(pool["fan/id_00"])  # pooled clips never evaluated
        assert len(s.test) == 5 - 3
    with pytest.raises(ASDError):
        data.unit_sets(t, "fan", "id_00", pool, n_anomalies=4)


def features_encoding_rows(n, frames=20, mels=3):
    """features[i, t, :] = 1000 i + t: every crop value names its clip and frame."""
    f = 1000.0 * np.arange(n)[:, None, None] + np.arange(frames)[None, :, None]
    return np.repeat(f, mels, axis=2).astype(np.float32)


def test_balanced_batches_composition_rows_and_crops():
    t = hand_table()
    feats = features_encoding_rows(len(t))
    s = data.unit_sets(t, "fan", "id_00")
    sampler = data.BalancedBatches(feats, s, composition=(4, 4), crop_frames=8, seed=1)
    seen = {int(i): 0 for i in np.concatenate([s.normal, s.outlier])}
    for _ in range(6):
        x, y = sampler.next_batch()
        assert x.shape == (8, 8, 3) and x.dtype == np.float32
        assert list(y) == [NORMAL] * 4 + [OUTLIER] * 4
        rows = (x[:, 0, 0] // 1000).astype(int)
        starts = x[:, 0, 0] % 1000
        assert set(rows[:4]) <= set(s.normal) and set(rows[4:]) <= set(s.outlier)
        assert np.all(starts >= 0) and np.all(starts <= 20 - 8)
        # each crop is 8 consecutive frames of one clip
        np.testing.assert_array_equal(x[:, :, 0] - x[:, :1, 0], np.tile(np.arange(8.0), (8, 1)))
        for r in rows:
            seen[int(r)] += 1
    # streams go through their clips in passes: 24 normal draws over 2 clips, 24 outlier draws over 4
    assert [seen[int(i)] for i in s.normal] == [12, 12]
    assert [seen[int(i)] for i in s.outlier] == [6, 6, 6, 6]


def test_batches_with_anomalies_32_31_1():
    t = hand_table()
    feats = features_encoding_rows(len(t), frames=12)
    pool = data.anomaly_pool(t, [("dev", "fan", "id_00")], 64, 0.75, seed=0)
    s = data.unit_sets(t, "fan", "id_00", pool, n_anomalies=2)
    sampler = data.BalancedBatches(feats, s, composition=(32, 31, 1), crop_frames=12, seed=0)
    assert sampler.batch_size == 64
    x, y = sampler.next_batch()
    assert (y == NORMAL).sum() == 32 and (y == OUTLIER).sum() == 31 and (y == ANOMALY).sum() == 1
    assert int(x[y == ANOMALY][0, 0, 0] // 1000) in set(s.anomaly)
    # the same composition without anomalies: the anomaly slot goes to the outliers
    plain = data.BalancedBatches(feats, data.unit_sets(t, "fan", "id_00"), (32, 31, 1), 12)
    assert plain.composition == (32, 32, 0)
    # anomalies counted as outliers when asked
    as_outlier = data.BalancedBatches(feats, s, (2, 1, 1), 12, anomaly_label=OUTLIER)
    assert list(as_outlier.next_batch()[1]) == [NORMAL, NORMAL, OUTLIER, OUTLIER]
    with pytest.raises(ASDError):
        data.BalancedBatches(feats, s, (0, 4), 12)
    with pytest.raises(ASDError):
        data.BalancedBatches(feats, s, (4, 4), 13)  # crops longer than the clips


def test_balanced_batches_dataset():
    t = hand_table()
    feats = features_encoding_rows(len(t))
    sampler = data.BalancedBatches(feats, data.unit_sets(t, "fan", "id_00"), (2, 3), 5, seed=0)
    x, y = next(iter(sampler.dataset()))
    assert tuple(x.shape) == (5, 5, 3) and list(y.numpy()) == [1, 1, -1, -1, -1]


def test_steps_per_epoch_definitions():
    t = hand_table()
    s = data.unit_sets(t, "fan", "id_00")  # 2 normal + 4 outlier clips
    assert data.steps_per_epoch(s, batch_size=4) == math.ceil(6 / 4)
    assert data.steps_per_epoch(s, batch_size=4, epoch="normal", normal_per_batch=1) == 2
    assert data.steps_per_epoch(s, batch_size=4, explicit=7) == 7
    with pytest.raises(ASDError):
        data.steps_per_epoch(s, 4, epoch="week")


def test_centroid_dataset_has_each_training_clip_once_centre_crop():
    t = hand_table()
    feats = features_encoding_rows(len(t), frames=20)
    pool = data.anomaly_pool(t, [("dev", "fan", "id_00")], 64, 0.75, seed=0)
    s = data.unit_sets(t, "fan", "id_00", pool, n_anomalies=1)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in data.centroid_dataset(feats, s, crop_frames=8, batch_size=4)])
    x, y = np.concatenate(xs), np.concatenate(ys)
    rows = (x[:, 0, 0] // 1000).astype(int)
    assert sorted(rows) == sorted(np.concatenate([s.normal, s.outlier]))  # no anomaly
    assert set(x[:, 0, 0] % 1000) == {(20 - 8) // 2}
    assert list(y[np.isin(rows, s.normal)]) == [NORMAL] * 2


# ------------------------------------------------------------------------------- amplitude normalisation

def wav_table(tmp_path, scales):
    """Clips of two machines (IDs) with different loudness; returns the table and the written waves."""
    rng = np.random.default_rng(0)
    rows, waves = [], []
    for unit, scale in scales.items():
        for split, label, i in (("train", "normal", 0), ("train", "normal", 1), ("test", "anomaly", 0)):
            path = tmp_path / f"{unit}_{split}_{i}.wav"
            w = (scale * rng.standard_normal(16000) + 0.001).clip(-1, 1).astype(np.float32)
            sf.write(str(path), w, 16000, subtype="FLOAT")
            waves.append(w)
            r = clip("dev", "fan", unit, split, label, i)
            r["path"] = str(path)
            rows.append(r)
    return pd.DataFrame(rows), waves


def test_waveform_statistics_and_cache(tmp_path, monkeypatch):
    table, waves = wav_table(tmp_path, {"id_00": 0.05, "id_02": 0.3})
    stats = data.waveform_statistics(table.path, cache_dir=tmp_path / "cache")
    for i, w in enumerate(waves):
        w = w.astype(np.float64)
        assert stats.n[i] == w.size
        assert stats["sum"][i] == pytest.approx(w.sum(), rel=1e-9, abs=1e-9)
        assert stats.sumsq[i] == pytest.approx((w * w).sum(), rel=1e-9)

    import asdcore.audio

    def no_reading(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(asdcore.audio, "load_many", no_reading)
    again = data.waveform_statistics(table.path, cache_dir=tmp_path / "cache")
    pd.testing.assert_frame_equal(stats, again)


def test_per_machine_standardisation_equals_a_log_mel_shift(tmp_path):
    table, waves = wav_table(tmp_path, {"id_00": 0.05, "id_02": 0.3})
    offsets, amplitudes = data.amplitude_normalisation(table, "machine", cache_dir=tmp_path / "cache")
    # statistics of each machine: all samples of its two training clips
    for unit, first in (("id_00", 0), ("id_02", 3)):
        samples = np.concatenate(waves[first: first + 2]).astype(np.float64)
        row = amplitudes[amplitudes.group == f"fan/{unit}"].iloc[0]
        assert row["mean"] == pytest.approx(samples.mean(), abs=1e-9)
        assert row["std"] == pytest.approx(samples.std(), rel=1e-9)
    # log-mel of the standardised waveform (computed from scratch) = log-mel of the raw one + offset
    config = LogMelConfig(n_frames=None)
    raw = compute_logmel(np.stack(waves), config)
    by_unit = {g.split("/")[1]: (m, s) for g, m, s in zip(amplitudes.group, amplitudes["mean"], amplitudes["std"])}
    standardised = np.stack([(w - by_unit[u][0]) / by_unit[u][1] for w, u in zip(waves, table.unit)])
    expected = compute_logmel(standardised.astype(np.float32), config)
    shifted = data.normalise_amplitude(raw.copy(), offsets)
    # identical but for the tiny DC offset (mean), which only touches the lowest mel bins
    np.testing.assert_allclose(shifted[:, :, 3:], expected[:, :, 3:], atol=0.05)
    assert np.median(np.abs(shifted - expected)) < 1e-3
    # each machine lands at the same level: the loud and the quiet machine now match on average
    levels = [shifted[table.unit.to_numpy() == u].mean() for u in ("id_00", "id_02")]
    assert abs(levels[0] - levels[1]) < 0.5


def test_default_features_come_from_waveforms_with_zero_mean_and_unit_variance(tmp_path):
    """Sec. IV-A: each machine's waves standardised to mean 0 and variance 1, then log-mel. The features the
    command uses (its statistics, the store built from the standardised waves) equal a log-mel computed by
    hand from ``(x - mean) / std`` of the machine's training samples, in every mel bin, the lowest included
    (the log-mel shift keeps the mean, a DC offset that reaches the lowest bin)."""
    from asdcore.pipeline import load_features

    rng = np.random.default_rng(3)
    rows, waves = [], []
    for unit, (scale, dc) in {"id_00": (0.05, 0.04), "id_02": (0.3, -0.1)}.items():
        for split, label, i in (("train", "normal", 0), ("train", "normal", 1), ("test", "anomaly", 0)):
            path = tmp_path / f"{unit}_{split}_{i}.wav"
            w = (scale * rng.standard_normal(16000) + dc).clip(-1, 1).astype(np.float32)
            sf.write(str(path), w, 16000, subtype="FLOAT")
            waves.append(w.astype(np.float64))
            r = clip("dev", "fan", unit, split, label, i)
            r["path"] = str(path)
            rows.append(r)
    table = pd.DataFrame(rows)
    _, amplitudes = data.amplitude_normalisation(table, "machine", cache_dir=tmp_path / "cache")
    config = LogMelConfig(n_frames=None)
    kept, features = load_features(table, config, cache_dir=tmp_path / "cache", ragged="pad",
                                   wave_affine=data.amplitude_affine(table, amplitudes, "machine"))
    assert len(kept) == len(table)
    expected = []
    for unit, first in (("id_00", 0), ("id_02", 3)):
        train = np.concatenate(waves[first: first + 2])  # the machine's training samples
        for w in waves[first: first + 3]:
            expected.append(((w - train.mean()) / train.std()).astype(np.float32))
    expected = compute_logmel(np.stack(expected), config)
    ours = np.asarray(features[np.arange(len(table))])
    np.testing.assert_allclose(ours, expected, atol=2e-3)
    # the standardised waves: mean 0, variance 1 over each machine's training clips (a second store, keyed by
    # the statistics: the raw features are not overwritten)
    _, raw = load_features(table, config, cache_dir=tmp_path / "cache", ragged="pad")
    shifted = data.normalise_amplitude(np.asarray(raw[np.arange(len(table))]),
                                       data.amplitude_offsets_db(table, amplitudes, "machine"))
    assert np.max(np.abs(shifted[:, :, 0] - expected[:, :, 0])) > 0.5  # the mean kept: the lowest bin is off


def test_amplitude_levels(tmp_path):
    table, waves = wav_table(tmp_path, {"id_00": 0.05, "id_02": 0.3})
    zeros, empty = data.amplitude_normalisation(table, "none")
    assert np.all(zeros == 0) and len(empty) == 0
    per_type, amps = data.amplitude_normalisation(table, "type")
    assert list(amps.group) == ["fan"] and len(set(per_type)) == 1
    train = np.concatenate([w for w, s in zip(waves, table.split) if s == "train"]).astype(np.float64)
    assert per_type[0] == pytest.approx(-10 * np.log10(train.var()), rel=1e-6)
    per_clip, amps = data.amplitude_normalisation(table, "clip")
    np.testing.assert_allclose(per_clip, [-10 * np.log10(w.astype(np.float64).var()) for w in waves], rtol=1e-5)
    with pytest.raises(ASDError):
        data.amplitude_normalisation(table, "section")


# ------------------------------------------------------------------------------ clips of different lengths

def ragged(n, lengths, frames=None):
    """features_encoding_rows with NaN after each clip's own length (extract_features(ragged="pad"))."""
    lengths = np.asarray(lengths)
    f = features_encoding_rows(n, frames=frames or int(lengths.max()))
    for i, length in enumerate(lengths):
        f[i, length:] = np.nan
    return f


def test_training_crops_and_centroid_crops_stay_inside_each_clip():
    t = hand_table()
    lengths = np.where(np.arange(len(t)) % 2 == 0, 12, 30)  # clips of 12 and of 30 frames
    feats = ragged(len(t), lengths)
    s = data.unit_sets(t, "fan", "id_00")
    sampler = data.BalancedBatches(feats, s, composition=(4, 4), crop_frames=8, seed=2, lengths=lengths)
    last_frames = {int(r): set() for r in np.concatenate([s.normal, s.outlier])}
    for _ in range(200):
        x, _ = sampler.next_batch()
        assert not np.isnan(x).any()
        rows = (x[:, 0, 0] // 1000).astype(int)
        for r, last in zip(rows, x[:, -1, 0] % 1000):
            last_frames[int(r)].add(int(last))
    for r, seen in last_frames.items():
        # every start 0 .. length - 8 is drawn: crops reach the clip's last frame, never beyond
        assert seen == set(range(7, int(lengths[r]))), r
    xs = [x.numpy() for x, _ in data.centroid_dataset(feats, s, crop_frames=8, batch_size=4, lengths=lengths)]
    x = np.concatenate(xs)
    rows = (x[:, 0, 0] // 1000).astype(int)
    np.testing.assert_array_equal(x[:, 0, 0] % 1000, (lengths[rows] - 8) // 2)  # each clip's centre


def test_crop_starts_by_hand_and_short_clips():
    # 10 crops of 256 frames: 313 frames (10 s) and 353 frames (ToyCar, ~11.3 s), worked out by hand
    starts = data.crop_starts([313, 353], 256, 10)
    assert starts[0].tolist() == [0, 6, 13, 19, 25, 32, 38, 44, 51, 57]
    assert starts[1].tolist() == [0, 11, 22, 32, 43, 54, 65, 75, 86, 97]
    assert data.crop_starts([313], 256, 1).tolist() == [[28]]
    with pytest.raises(ASDError):
        data.crop_starts([200], 256, 10)
    # a clip shorter than a crop is repeated up to the crop length
    feats = ragged(2, [3, 5], frames=5)
    out, lengths = data.fit_short_clips(feats, np.array([3, 5]), 8)
    assert out.shape == (2, 8, 3) and lengths.tolist() == [8, 8]
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 2, 0, 1, 2, 0, 1])
    np.testing.assert_array_equal(out[1, :, 0], 1000 + np.array([0, 1, 2, 3, 4, 0, 1, 2]))


def test_store_path_gives_the_scores_and_batches_of_the_in_memory_path(tmp_path):
    """A tiny DDCSAD run: the batches, the centroids and the ten-crop outputs read from the ragged
    memory-mapped store (with amplitude offsets and short clips looped on reading) are identical to those
    of the NaN-padded in-memory array edited in place."""
    import keras

    from asdcore.feature_store import open_ragged_store
    from asdcore.features import extract_features, valid_frames
    from ddcsad.backbones import build_light_encoder
    from ddcsad.model import DDCSADModel
    from ddcsad.scoring import crop_outputs

    config = LogMelConfig(n_mels=16, n_frames=None)
    paths = []
    for i, seconds in enumerate((0.6, 0.9, 0.35, 0.8, 0.6, 0.7)):
        p = tmp_path / f"normal_id_00_{i:08d}.wav"
        sf.write(p, 0.05 * np.random.default_rng(i).standard_normal(int(seconds * 16000)).astype(np.float32),
                 16000, subtype="PCM_16")
        paths.append(str(p))
    crop, offsets = 20, np.linspace(-3, 3, len(paths))
    memory = extract_features(paths, config, progress=False, ragged="pad").features
    memory, mem_lengths = data.fit_short_clips(memory, valid_frames(memory), crop)
    memory = data.normalise_amplitude(memory, offsets)
    store = open_ragged_store(paths, config, tmp_path / "cache", progress=False).features
    store, store_lengths = data.fit_short_clips(store, valid_frames(store), crop)
    store = data.normalise_amplitude(store, offsets)
    np.testing.assert_array_equal(store_lengths, mem_lengths)
    sets = data.UnitSets("dev", "fan", "id_00", normal=np.array([0, 1, 2]), outlier=np.array([3, 4, 5]))
    outputs = []
    for features, lengths in ((memory, mem_lengths), (store, store_lengths)):
        batches = data.BalancedBatches(features, sets, (2, 2), crop, seed=0, lengths=lengths)
        first = [batches.next_batch()[0] for _ in range(3)]
        keras.utils.set_random_seed(0)
        model = DDCSADModel(build_light_encoder((crop, 16, 1)), variant="bce+ddcsad")
        model.compile()
        model.update_centroids(data.centroid_dataset(features, sets, crop, 4, lengths=lengths))
        logit, d = crop_outputs(model, features, rows=np.arange(6), n_crops=3, crop_frames=crop, batch_size=6,
                                lengths=lengths)
        outputs.append((first, model.c_p.numpy(), logit, d))
    for a, b in zip(outputs[0][0], outputs[1][0]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(outputs[0][1:], outputs[1][1:]):
        np.testing.assert_array_equal(a, b)
