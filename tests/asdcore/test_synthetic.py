"""The synthetic DCASE data (asdcore.synthetic): exact layouts, ground-truth files, determinism, the cache,
the command line, and difficulty (a simple detector is informative but not perfect).

Expected names are written out here from REFERENCE.md section 1; difficulty is measured with librosa,
scikit-learn and soundfile directly, not with the project's own feature or metric code.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from asdcore import synthetic
from asdcore.errors import ASDError

REPO = Path(__file__).resolve().parents[2]

IDS_2020 = {
    "dev": {"fan": ["00", "02", "04", "06"], "pump": ["00", "02", "04", "06"], "slider": ["00", "02", "04", "06"],
            "valve": ["00", "02", "04", "06"], "ToyCar": ["01", "02", "03", "04"], "ToyConveyor": ["01", "02", "03"]},
    "eval": {"fan": ["01", "03", "05"], "pump": ["01", "03", "05"], "slider": ["01", "03", "05"],
             "valve": ["01", "03", "05"], "ToyCar": ["05", "06", "07"], "ToyConveyor": ["04", "05", "06"]},
}
SECTIONS_2021 = {"dev": ["00", "01", "02"], "eval": ["03", "04", "05"]}
ATTRIBUTE_PATTERNS = {
    "fan": r"strength_[123]_(ambient|factory)",
    "gearbox": r"volt_(1\.0|1\.1|0\.8)_wt_(30|50|150)",
    "pump": r"flow_[124]_(ambient|factory)",
    "slider": r"vel_(600|650|480)_ac_(0\.03|0\.04|0\.08)",
    "valve": r"pat_0[012]_(ambient|factory)",
    "ToyCar": r"car_(A1|A2|B1)_spd_(28V|30V|22V)_mic_1_noise_[12]",
    "ToyTrain": r"car_(A1|A2|B1)_spd_[567]_mic_1_noise_[12]",
}


def wav_files(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*.wav"))


# ------------------------------------------------------------------------------------------ layout

def test_layout_2020_exact_names_counts_and_ground_truth(tmp_path):
    root = synthetic.generate(2020, tmp_path / "d", preset="tiny", duration=0.25)
    n_train, n_norm, n_anom = 4, 2, 2  # the tiny preset
    expected = []
    for mtype in ("fan", "ToyCar"):
        for i in IDS_2020["dev"][mtype]:
            expected += [f"dev_data/{mtype}/train/normal_id_{i}_{k:08d}.wav" for k in range(n_train)]
            expected += [f"dev_data/{mtype}/test/normal_id_{i}_{k:08d}.wav" for k in range(n_norm)]
            expected += [f"dev_data/{mtype}/test/anomaly_id_{i}_{k:08d}.wav" for k in range(n_anom)]
        for i in IDS_2020["eval"][mtype]:
            expected += [f"eval_data/{mtype}/train/normal_id_{i}_{k:08d}.wav" for k in range(n_train)]
            expected += [f"eval_data/{mtype}/test/id_{i}_{k:08d}.wav" for k in range(n_norm + n_anom)]
    assert wav_files(root) == sorted(expected)

    # eval_data_list.csv: a type line opens a block; rows id_XX_NNNNNNNN.wav,<original name>,<0|1>
    lines = (root / "eval_data_list.csv").read_text().splitlines()
    blocks, current = {}, None
    for line in lines:
        fields = line.split(",")
        if len(fields) == 1:
            current = fields[0]
            blocks[current] = []
        else:
            blocks[current].append(fields)
    assert sorted(blocks) == ["ToyCar", "fan"]
    for mtype, rows in blocks.items():
        assert len(rows) == 3 * (n_norm + n_anom)
        listed = sorted(f"eval_data/{mtype}/test/{r[0]}" for r in rows)
        assert listed == sorted(e for e in expected if e.startswith(f"eval_data/{mtype}/test/"))
        for name, original, label in rows:
            m = re.fullmatch(r"(normal|anomaly)_id_(\d\d)_\d{8}\.wav", original)
            assert m and m.group(2) == name[3:5]
            assert label == ("1" if m.group(1) == "anomaly" else "0")
        for i in IDS_2020["eval"][mtype]:
            labels = [r[2] for r in rows if r[0].startswith(f"id_{i}_")]
            assert sorted(labels) == ["0"] * n_norm + ["1"] * n_anom
            originals = {r[1] for r in rows if r[0].startswith(f"id_{i}_")}
            assert len(originals) == n_norm + n_anom

    # every file: 16 kHz, mono, 16-bit PCM WAV of the requested length
    for rel in expected[:5] + expected[-5:]:
        info = sf.info(str(root / rel))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        assert info.frames == 4000


def test_layout_2021_exact_names_counts_attributes_and_ground_truth(tmp_path):
    root = synthetic.generate(2021, tmp_path / "d", preset="tiny", duration=0.25, n_train=3, n_target_train=2)
    n_norm, n_anom = 2, 2
    expected = []
    names = {}
    for part in ("dev", "eval"):
        for mtype in ("fan", "ToyCar"):
            for s in SECTIONS_2021[part]:
                for dom in ("source", "target"):
                    if part == "dev":
                        expected += [f"dev_data/{mtype}/{dom}_test/section_{s}_{dom}_test_{lab}_{k:04d}.wav"
                                     for lab, n in (("normal", n_norm), ("anomaly", n_anom)) for k in range(n)]
                    else:
                        expected += [f"eval_data/{mtype}/{dom}_test/section_{s}_{dom}_test_{k:04d}.wav"
                                     for k in range(n_norm + n_anom)]
                    # train names carry attributes: checked by pattern, then added
                    n_train = 3 if dom == "source" else 2
                    got = sorted(p.name for p in (root / f"{part}_data" / mtype / "train").glob(
                        f"section_{s}_{dom}_train_normal_*.wav"))
                    assert len(got) == n_train
                    pattern = rf"section_{s}_{dom}_train_normal_(\d{{4}})_({ATTRIBUTE_PATTERNS[mtype]})\.wav"
                    matches = [re.fullmatch(pattern, g) for g in got]
                    assert all(matches), got
                    assert sorted(int(m.group(1)) for m in matches) == list(range(n_train))
                    names[(part, mtype, s, dom)] = {m.group(2) for m in matches}
                    expected += [f"{part}_data/{mtype}/train/{g}" for g in got]
    assert wav_files(root) == sorted(expected)
    # the target domain is another operating condition: its attributes are not among the source's
    for (part, mtype, s, dom), attrs in names.items():
        if dom == "target":
            assert not attrs & names[(part, mtype, s, "source")]

    # ground truth: ground_truth/ground_truth_<type>_section_XX_<domain>_test.csv, rows file,0|1
    gt_dir = root / "ground_truth"
    expected_gt = sorted(f"ground_truth_{t}_section_{s}_{d}_test.csv" for t in ("fan", "ToyCar")
                         for s in SECTIONS_2021["eval"] for d in ("source", "target"))
    assert sorted(p.name for p in gt_dir.iterdir()) == expected_gt
    for path in gt_dir.iterdir():
        m = re.fullmatch(r"ground_truth_(\w+?)_section_(\d\d)_(source|target)_test\.csv", path.name)
        rows = [line.split(",") for line in path.read_text().splitlines()]
        assert sorted(r[0] for r in rows) == sorted(
            p.name for p in (root / "eval_data" / m.group(1) / f"{m.group(3)}_test").glob(
                f"section_{m.group(2)}_*.wav"))
        assert sorted(r[1] for r in rows) == ["0"] * n_norm + ["1"] * n_anom


def test_default_duration_is_ten_seconds_and_sizes_are_configurable(tmp_path):
    root = synthetic.generate(2020, tmp_path / "d", preset="tiny", machine_types=["valve"], parts=("dev",),
                              n_train=1, n_test_normal=1, n_test_anomaly=0)
    files = wav_files(root)
    assert files == sorted([f"dev_data/valve/train/normal_id_{i}_00000000.wav" for i in IDS_2020["dev"]["valve"]]
                           + [f"dev_data/valve/test/normal_id_{i}_00000000.wav" for i in IDS_2020["dev"]["valve"]])
    info = sf.info(str(root / files[0]))
    assert info.frames == 160000 and info.samplerate == 16000
    assert not (root / "eval_data_list.csv").exists()  # no eval part, no ground truth
    wave, _ = sf.read(str(root / files[0]), dtype="float32")
    rms = float(np.sqrt(np.mean(wave ** 2)))
    assert 0.01 < rms < 0.3 and np.abs(wave).max() < 1.0  # a sensible level, no clipping


def test_presets_and_bad_options(tmp_path):
    assert {"quick", "tiny"} <= set(synthetic.PRESETS)
    quick = synthetic.PRESETS["quick"]
    assert quick["machine_types"] is None and quick["duration"] == 10.0
    assert quick["n_target_train"] == 3
    with pytest.raises(ASDError, match="preset"):
        synthetic.generate(2020, tmp_path / "a", preset="huge")
    with pytest.raises(ASDError, match="gearbox"):
        synthetic.generate(2020, tmp_path / "b", machine_types=["gearbox"])
    with pytest.raises(ASDError, match="size option"):
        synthetic.generate(2020, tmp_path / "c", n_clips=3)
    with pytest.raises(ASDError, match="2020 or 2021"):
        synthetic.generate(2019, tmp_path / "d")
    (tmp_path / "e" / "dev_data").mkdir(parents=True)
    with pytest.raises(ASDError, match="already exists"):
        synthetic.generate(2020, tmp_path / "e", preset="tiny", duration=0.1)


# ------------------------------------------------------------------------------------------ determinism

def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    options = dict(preset="tiny", machine_types=["valve", "ToyCar"], duration=0.5, n_train=2)
    a = synthetic.generate(2021, tmp_path / "a", seed=7, **options)
    b = synthetic.generate(2021, tmp_path / "b", seed=7, **options)
    c = synthetic.generate(2021, tmp_path / "c", seed=8, **options)
    files = wav_files(a)
    assert files == wav_files(b)
    all_files = files + [str(p.relative_to(a)) for p in (a / "ground_truth").iterdir()]
    for rel in all_files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    # another seed: other recordings (and other source attributes in some train names)
    files_c = wav_files(c)
    assert len(files_c) == len(files)
    differ = sum((a / ra).read_bytes()[44:] != (c / rc).read_bytes()[44:] for ra, rc in zip(files, files_c))
    assert differ == len(files)
    # clips are distinct recordings, not copies of each other
    heads = {(a / rel).read_bytes()[44:2044] for rel in files}
    assert len(heads) == len(files)


# ------------------------------------------------------------------------------------------ cache

@pytest.fixture
def micro_preset(monkeypatch):
    monkeypatch.setitem(synthetic.PRESETS, "micro", dict(machine_types=("slider",), n_train=1, n_test_normal=1,
                                                         n_test_anomaly=1, n_target_train=1, duration=0.2))
    return "micro"


def test_ensure_synthetic_generates_once(tmp_path, micro_preset, monkeypatch):
    calls = []
    real_generate = synthetic.generate

    def counting_generate(*args, **kwargs):
        calls.append(args)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(synthetic, "generate", counting_generate)
    root = synthetic.ensure_synthetic(2020, cache_dir=tmp_path, preset=micro_preset, seed=3)
    assert Path(root) == tmp_path / "2020_micro_3"
    assert (Path(root) / "dev_data" / "slider" / "train" / "normal_id_00_00000000.wav").is_file()
    assert (Path(root) / "eval_data_list.csv").is_file()
    again = synthetic.ensure_synthetic(2020, cache_dir=tmp_path, preset=micro_preset, seed=3)
    assert again == root and len(calls) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["2020_micro_3"]  # no temporary folder left behind


def test_ensure_synthetic_regenerates_a_half_written_set(tmp_path, micro_preset):
    half = tmp_path / "2021_micro_0"
    (half / "dev_data" / "slider" / "train").mkdir(parents=True)
    (half / "dev_data" / "slider" / "train" / "section_00_source_train_normal_0000_x.wav").write_bytes(b"RIFF")
    root = synthetic.ensure_synthetic(2021, cache_dir=tmp_path, preset=micro_preset)
    assert root == half
    assert not (half / "dev_data" / "slider" / "train" / "section_00_source_train_normal_0000_x.wav").exists()
    assert len(list((half / "ground_truth").iterdir())) == 6
    # a folder holding anything else is never deleted
    odd = tmp_path / "other"
    (odd / "2020_micro_0").mkdir(parents=True)
    (odd / "2020_micro_0" / "my_thesis.tex").write_text("keep me")
    with pytest.raises(ASDError, match="my_thesis.tex"):
        synthetic.ensure_synthetic(2020, cache_dir=odd, preset=micro_preset)
    assert (odd / "2020_micro_0" / "my_thesis.tex").exists()


def test_ensure_synthetic_default_cache_follows_env(tmp_path, micro_preset, monkeypatch):
    monkeypatch.setenv("ASD_CACHE_DIR", str(tmp_path / "cache"))
    root = synthetic.ensure_synthetic(2020, preset=micro_preset)
    assert root == tmp_path / "cache" / "synthetic" / "2020_micro_0"
    monkeypatch.delenv("ASD_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert synthetic.default_cache_root() == tmp_path / "home" / ".cache" / "asd_reference" / "synthetic"


# ------------------------------------------------------------------------------------------ CLI

def test_command_line(tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "asdcore.synthetic", "2021", str(out), "--preset", "tiny",
                           "--seed", "1", "--machine-types", "pump", "--duration", "0.1", "--n-train", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ground_truth/" in proc.stdout
    assert len(list((out / "dev_data" / "pump" / "train").glob("*.wav"))) == 3 * (1 + 2)
    assert len(list((out / "ground_truth").glob("ground_truth_pump_section_0*_test.csv"))) == 6
    info = json.loads((out / "synthetic_info.json").read_text())
    assert info["seed"] == 1 and info["year"] == 2021
    # a second run into the same folder refuses, with a one-line message
    assert synthetic.main(["2021", str(out), "--preset", "tiny", "--duration", "0.1"]) == 2


# ------------------------------------------------------------------------------------------ difficulty

MEL = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=128)


def temporal_mean_logmel(paths):
    waves = np.stack([sf.read(str(p), dtype="float32")[0] for p in paths])
    power = np.abs(librosa.stft(waves, n_fft=1024, hop_length=512)) ** 2  # [clips, bins, frames]
    logmel = 10 * np.log10(np.maximum(MEL @ power, 1e-10))  # [clips, mels, frames]
    return logmel.mean(axis=2)


def simple_detector_aucs(root, year):
    """Per unit (and domain): a Gaussian (Ledoit-Wolf covariance) on the temporal mean of the log-mel of the
    training clips; anomaly score = Mahalanobis distance; ROC AUC over the labelled dev test clips."""
    aucs = {}
    with threadpool_limits(1):  # small matrices: BLAS threads only add overhead on a shared machine
        for type_dir in sorted((root / "dev_data").iterdir()):
            aucs.update(_type_aucs(type_dir, year))
    return aucs


def _type_aucs(type_dir, year):
    aucs = {}
    train = sorted((type_dir / "train").glob("*.wav"))
    tests = sorted(type_dir.glob("*test/*.wav"))
    units = sorted({re.match(r"(normal_|anomaly_)?(id_\d\d|section_\d\d)", p.name).group(2) for p in train})
    for unit in units:
        gauss = LedoitWolf().fit(temporal_mean_logmel([p for p in train if unit in p.name]))
        for domain in (("",) if year == 2020 else ("source", "target")):
            te = [p for p in tests if unit in p.name and (not domain or p.parent.name == f"{domain}_test")]
            labels = np.array(["anomaly" in p.name for p in te])
            scores = gauss.mahalanobis(temporal_mean_logmel(te))
            aucs[(type_dir.name, unit, domain)] = roc_auc_score(labels, scores)
    return aucs


def test_simple_detector_is_informative_not_perfect_2020(tmp_path):
    """The quick preset's sizes (12 train, 6 + 6 test clips of 10 s per ID), every 2020 type, dev part."""
    root = synthetic.generate(2020, tmp_path / "d", preset="quick", parts=("dev",))
    aucs = simple_detector_aucs(root, 2020)
    assert len(aucs) == 23
    values = np.array(list(aucs.values()))
    print(f"2020 simple detector: mean AUC {values.mean():.3f}, per type " + ", ".join(
        f"{t} {np.mean([v for k, v in aucs.items() if k[0] == t]):.2f}" for t in sorted({k[0] for k in aucs})))
    assert 0.6 < values.mean() < 0.95
    assert (values >= 0.999).mean() < 0.3  # few units are solved perfectly
    assert (values > 0.5).mean() > 0.6  # most units are above chance


@pytest.mark.slow
def test_simple_detector_is_informative_not_perfect_2021(tmp_path):
    """Every 2021 type, dev sections, source and target domains (the target with 3 training clips)."""
    root = synthetic.generate(2021, tmp_path / "d", preset="quick", parts=("dev",))
    aucs = simple_detector_aucs(root, 2021)
    assert len(aucs) == 7 * 3 * 2
    values = np.array(list(aucs.values()))
    source = np.array([v for k, v in aucs.items() if k[2] == "source"])
    print(f"2021 simple detector: mean AUC {values.mean():.3f} (source {source.mean():.3f})")
    assert 0.6 < values.mean() < 0.95
    assert (values >= 0.999).mean() < 0.3
