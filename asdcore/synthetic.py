"""A small machine-sound data set in the exact DCASE 2020-2025 task 2 layouts (demos and tests).

No download is needed to try the project: :func:`generate` writes recordings that look, to every part of
the code, like the DCASE data (folders, file names, 10 s 16 kHz mono 16-bit WAV, eval labels in the
organisers' ground-truth files), and :func:`ensure_synthetic` does it once into a cache folder. The sounds
are made to be *informative*: a simple detector (a Gaussian on the temporal mean of the log-mel, per unit)
is clearly better than chance and clearly worse than perfect, so a method that models more (temporal
structure, domain shift) has room to show it. The numbers are **not** comparable with the papers'.

Layout written (REFERENCE.md section 1)
---------------------------------------
2020 (units = machine IDs; fan/pump/slider/valve dev 00 02 04 06, eval 01 03 05; ToyCar dev 01-04, eval
05-07; ToyConveyor dev 01-03, eval 04-06)::

    OUT/dev_data/<type>/train/normal_id_XX_NNNNNNNN.wav
    OUT/dev_data/<type>/test/{normal,anomaly}_id_XX_NNNNNNNN.wav
    OUT/eval_data/<type>/train/normal_id_XX_NNNNNNNN.wav      (the "additional training set")
    OUT/eval_data/<type>/test/id_XX_NNNNNNNN.wav              (unlabelled, shuffled)
    OUT/eval_data_list.csv                                    (the ground truth, organisers' format)

2021 (units = sections; dev 00-02, eval 03-05 for fan, gearbox, pump, slider, valve, ToyCar, ToyTrain)::

    OUT/{dev_data,eval_data}/<type>/train/section_XX_source_train_normal_NNNN_<attributes>.wav
    OUT/{dev_data,eval_data}/<type>/train/section_XX_target_train_normal_NNNN_<attributes>.wav
    OUT/dev_data/<type>/{source,target}_test/section_XX_<domain>_test_{normal,anomaly}_NNNN.wav
    OUT/eval_data/<type>/{source,target}_test/section_XX_<domain>_test_NNNN.wav   (unlabelled, shuffled)
    OUT/ground_truth/ground_truth_<type>_section_XX_<domain>_test.csv              (rows file,0|1)

2022-2025 (one grammar; 2022: the seven types with dev sections 00-02 and eval 03-05; 2023-2025: section 00,
the year's development types in ``dev_data`` and its evaluation-only types in ``eval_data``)::

    OUT/{dev_data,eval_data}/<type>/train/section_XX_{source,target}_train_normal_NNNN_<attributes>.wav
    OUT/dev_data/<type>/test/section_XX_{source,target}_test_{normal,anomaly}_NNNN_<attributes>.wav
    OUT/eval_data/<type>/test/section_XX_NNNN.wav          (both domains, unlabelled, shuffled)
    OUT/{dev_data,eval_data}/<type>/attributes_XX.csv      (file_name,d1p,d1v[,d2p,d2v]; eval: train clips)
    OUT/ground_truth_{data,domain,attributes}/ground_truth_<type>_section_XX_test.csv   (the evaluator's layout)

The attributes are ``<param>_<value>`` pairs of the section's operating knobs (``spd_2_noise_A``); the types
whose attributes the organisers hid that year (:data:`asdcore.layouts.HIDDEN_ATTRIBUTES`) are named
``noAttribute``. Machine types of the later years reuse the eight sound models below (:data:`VOICES`: a
drone sounds like the fan model, a band saw like the slider model, ...), each unit with its own parameters.
No supplementary 2025 recordings are written (no method uses them).

:mod:`asdcore.layouts` finds every year's ground truth there without any option. Indices restart at 0 in every
folder and label, so (as in the real 2020 data) normal names repeat between train and test.

Sound model
-----------
Each clip is ``machine + background``, built from three kinds of components: harmonic tone stacks with slow
speed jitter (rotating parts), shaped noise with slow or periodic modulation (flow, friction, air, belts),
and impacts (a few damped resonances plus a noise burst, placed at given times). Per machine type:

==============  ====================================================================================
fan             blade-pass harmonics on a rotation frequency, aerodynamic broadband hump
pump            motor harmonics, low-passed flow noise with surges, soft pulsations
slider          periodic strokes: friction noise and motor whine gated by the motion, end-stop impacts
valve           open/close click patterns (solenoid resonances), faint flow hiss while open
gearbox         gear-mesh harmonics with shaft-rate sidebands (AM), motor hum, bearing noise
ToyCar          motor whine with commutator harmonics, gear whine, rolling noise modulated at wheel rate
ToyTrain        motor whine, rail-joint click pairs, rolling noise
ToyConveyor     motor hum, roller whirr, belt noise with seam thumps
background      pink-ish factory noise with a unit-specific tilt and hump, mains hum, distant knocks
==============  ====================================================================================

Every unit (ID or section) draws its own parameters (frequencies, numbers of blades/teeth, resonances,
patterns, levels, signal-to-background ratio); every clip varies them a little (speed, levels, timbre) so
the normal class has a realistic spread. Anomalies are subtle and of several kinds per type (e.g. a shifted
speed, an extra whine, irregular or missing impacts, amplitude modulation, a changed resonance, more
noise, crackle); each anomalous clip gets one kind (the kinds are cycled through a unit's clips) at a random
severity. Several kinds barely change the long-term spectrum and are found only from temporal structure.

2021 domain shift: each section shifts one operating knob between the source and the target domain
(``speed``, ``load`` or ``noise``: the background changes from "ambient" to a louder "factory" noise), chosen
per section from the knobs the type has. The knobs appear in the train file names as attributes, e.g.
``strength_2_ambient`` (fan), ``volt_1.0_wt_30`` (gearbox), ``car_A1_spd_28V_mic_1_noise_1`` (ToyCar).
Source clips use one of two source levels of the shifted knob, target clips a third, clearly different one.

Determinism: every clip is drawn from its own generator seeded by ``seed`` and the clip's identity (year,
type, unit, domain, split, label, index), so the same seed gives the same bytes, and a smaller set is the
same clips as a larger one where they overlap.

Presets (:data:`PRESETS`): ``quick`` (the run scripts' default: all types and units, 12 train clips and
6 normal + 6 anomalous test clips per unit and domain, 3 target train clips per 2021 section), ``tiny``
(tests: fan and ToyCar only, 4 train, 2 + 2 test, 2 target train), ``medium`` (100 train, 20 + 20 test).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import shutil
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

from .atomic_io import atomic_dir
from .errors import ASDError
from .layouts import HIDDEN_ATTRIBUTES, LATER_YEARS, MACHINE_TYPES, OFFICIAL_UNITS

__all__ = ["PRESETS", "VOICES", "TINY_LATER_TYPES", "GENERATOR_VERSION", "generate", "ensure_synthetic", "default_cache_root",
           "render_clip", "main"]

#: Bump when the sounds change: cached sets made by another version are generated again.
GENERATOR_VERSION = 2
SR = 16000
_MARKER = ".synthetic_complete.json"

PRESETS = {
    "quick": dict(machine_types=None, n_train=12, n_test_normal=6, n_test_anomaly=6, n_target_train=3,
                  duration=10.0),
    "tiny": dict(machine_types=("fan", "ToyCar"), n_train=4, n_test_normal=2, n_test_anomaly=2,
                 n_target_train=2, duration=10.0),
    "medium": dict(machine_types=None, n_train=100, n_test_normal=20, n_test_anomaly=20, n_target_train=3,
                   duration=10.0),
}

#: 2022-2025 machine types -> the sound model (one of the eight below) their clips are made with.
VOICES = {
    "bearing": "gearbox", "ToyDrone": "fan", "ToyNscale": "ToyTrain", "ToyTank": "ToyCar", "Vacuum": "fan",
    "bandsaw": "slider", "grinder": "pump", "shaker": "valve", "3DPrinter": "slider", "AirCompressor": "pump",
    "Scanner": "slider", "ToyCircuit": "ToyTrain", "HoveringDrone": "fan", "HairDryer": "fan",
    "ToothBrush": "ToyCar", "RoboticArm": "slider", "BrushlessMotor": "gearbox", "ToyRCCar": "ToyCar",
    "ToyPet": "ToyCar", "HomeCamera": "slider", "AutoTrash": "valve", "Polisher": "pump",
    "ScrewFeeder": "ToyConveyor", "BandSealer": "ToyConveyor", "CoffeeGrinder": "pump",
}
#: The ``tiny`` preset's types in the later years: a development type, a type with hidden attributes where the
#: year has them, and an evaluation-only type (2022 has none).
TINY_LATER_TYPES = {2022: ("ToyCar", "fan"), 2023: ("ToyCar", "fan", "ToyDrone"),
                    2024: ("fan", "gearbox", "AirCompressor"), 2025: ("bearing", "fan", "AutoTrash")}


def _voice(mtype):
    return VOICES.get(mtype, mtype)


# anomaly kinds per machine type (cycled over a unit's anomalous clips)
ANOMALY_KINDS = {
    "fan": ("shift", "imbalance", "whine", "noise", "rub"),
    "pump": ("shift", "cavitation", "leak", "clog", "whine"),
    "slider": ("friction", "rail", "squeal", "stop", "shift"),
    "valve": ("missing", "timing", "bounce", "resonance", "leak"),
    "gearbox": ("tooth", "wear", "shift", "whine", "noise"),
    "ToyCar": ("shift", "gear", "shaft", "whine", "noise"),
    "ToyTrain": ("shift", "joint", "scrape", "whine", "am"),
    "ToyConveyor": ("belt", "roller", "am", "noise", "shift"),
}

# 2021 operating knobs: level tables (index 0, 1 = source levels, 2 = target level)
_SPEED = (1.0, 1.07, 0.8)
_LOAD = (0.0, 0.35, 1.0)
_KNOBS = {  # which knobs a type has (the shifted one is chosen per section)
    "fan": ("speed", "noise"), "gearbox": ("speed", "load"), "pump": ("load", "noise"),
    "slider": ("speed", "load"), "valve": ("speed", "noise"), "ToyCar": ("speed", "load", "noise"),
    "ToyTrain": ("speed", "load", "noise"), "ToyConveyor": ("speed", "load", "noise"),
}
_NOISE_NAMES = ("ambient", "factory")


def _attributes(mtype, s, l, nz):
    """Train-file attributes of a 2021 clip from its knob levels (speed s, load l, noise nz)."""
    if mtype == "fan":
        return f"strength_{(1, 2, 3)[s]}_{_NOISE_NAMES[nz]}"
    if mtype == "gearbox":
        return f"volt_{('1.0', '1.1', '0.8')[s]}_wt_{('30', '50', '150')[l]}"
    if mtype == "pump":
        return f"flow_{('1', '2', '4')[l]}_{_NOISE_NAMES[nz]}"
    if mtype == "slider":
        return f"vel_{('600', '650', '480')[s]}_ac_{('0.03', '0.04', '0.08')[l]}"
    if mtype == "valve":
        return f"pat_{('00', '01', '02')[s]}_{_NOISE_NAMES[nz]}"
    if mtype == "ToyCar":
        return f"car_{('A1', 'A2', 'B1')[l]}_spd_{('28V', '30V', '22V')[s]}_mic_1_noise_{nz + 1}"
    if mtype == "ToyTrain":
        return f"car_{('A1', 'A2', 'B1')[l]}_spd_{('6', '7', '5')[s]}_mic_1_noise_{nz + 1}"
    return f"spd_{('1', '2', '0')[s]}_load_{('1', '2', '3')[l]}_noise_{nz + 1}"


# ----------------------------------------------------------------------------------------------- helpers

def _rng(seed, *keys):
    """A generator seeded by ``seed`` and stable hashes of ``keys`` (independent of Python's hash seed)."""
    words = [int(seed)] + [zlib.crc32(str(k).encode("utf-8")) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(words))


_COARSE = 16  # slow modulations are computed every 16 samples (1 ms) and held: far below audibility


@functools.lru_cache(maxsize=4)
def _grid(n):
    """Time axes (s; float32, float64 and every ``_COARSE``-th sample), rfft frequencies and their log2."""
    t64 = np.arange(n, dtype=np.float64) / SR
    t = t64.astype(np.float32)
    t_coarse = t[::_COARSE].copy()
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / SR), 1.0).astype(np.float32)
    logf = np.log2(freqs)
    for a in (t64, t, t_coarse, freqs, logf):
        a.flags.writeable = False
    return t, t64, t_coarse, freqs, logf


@functools.lru_cache(maxsize=256)
def _shape(n, tilt, lo, hi, peaks):
    """Magnitude over the rfft bins: ~f**(-tilt/2), high-pass at ``lo``, low-pass at ``hi``, log-normal humps."""
    f, lf = _grid(n)[3:]
    mag = f ** np.float32(-tilt / 2)
    mag /= 1 + (np.float32(lo) / f) ** 4
    mag /= 1 + (f / np.float32(hi)) ** 6
    if peaks:
        boost = np.ones_like(mag)
        for fc, width, gain in peaks:
            boost += np.float32(gain) * np.exp(-0.5 * ((lf - np.float32(np.log2(fc))) / np.float32(width)) ** 2)
        mag *= boost
    mag.flags.writeable = False
    return mag


class _Clip:
    """Time axes and random generator of one clip being rendered."""

    def __init__(self, n, rng):
        self.n = n
        self.rng = rng
        self.t, self.t64, self.t_coarse = _grid(n)[:3]

    def _sines(self, rate, n_sines, integral):
        """Sum of ``n_sines`` random sines near ``rate`` Hz (unit variance), or its time integral (s)."""
        rng = self.rng
        tc = self.t_coarse
        out = np.zeros(tc.size, np.float32)
        for _ in range(n_sines):
            f = rate * rng.uniform(0.3, 1.2)
            phi = rng.uniform(0, 2 * np.pi)
            arg = np.float32(2 * np.pi * f) * tc + np.float32(phi)
            if integral:  # integral of sin(2 pi f t + phi) from 0 to t
                out += (np.float32(np.cos(phi)) - np.cos(arg)) * np.float32(1 / (2 * np.pi * f))
            else:
                out += np.sin(arg)
        out *= np.float32(np.sqrt(2.0 / n_sines))
        return np.repeat(out, _COARSE)[:self.n]

    def slow(self, rate, n_sines=3):
        """A smooth zero-mean random signal (unit variance) with content around ``rate`` Hz."""
        return self._sines(rate, n_sines, integral=False)

    def phase(self, f0, jitter=0.0, jitter_rate=0.5):
        """Wrapped phase (float32, radians) of a rotation at ``f0`` Hz whose speed varies by ``jitter``.

        The instantaneous frequency is ``f0 * (1 + jitter * slow(t))``; its integral is computed in closed form.
        """
        ph = self.t64 * f0  # cycles
        if jitter:
            ph += (f0 * jitter) * self._sines(jitter_rate, 3, integral=True)
        ph += self.rng.uniform(0, 1)
        ph -= np.floor(ph)  # wrap to [0, 1) cycles (np.mod is several times slower)
        ph *= 2 * np.pi
        return ph.astype(np.float32)

    def partials(self, phase, f0, ks, amps):
        """Sum of ``amps[i] * sin(ks[i] * phase + random phase)``, unit RMS, partials above 7.2 kHz dropped.

        ``ks`` must be whole numbers (``phase`` is wrapped to one turn).
        """
        out = np.zeros(self.n, np.float32)
        buf = np.empty(self.n, np.float32)
        power = 0.0
        for k, a in zip(ks, amps):
            if a <= 0 or k * f0 > 7200:
                continue
            np.multiply(phase, np.float32(k), out=buf)
            buf += np.float32(self.rng.uniform(0, 2 * np.pi))
            np.sin(buf, out=buf)
            buf *= np.float32(a)
            out += buf
            power += a * a / 2
        out *= np.float32(1 / np.sqrt(power) if power > 0 else 1.0)
        return out

    def tone(self, f, jitter=0.002):
        """A single (non-harmonic) tone with slow jitter, unit RMS."""
        out = np.sin(self.phase(f, jitter, 0.7))
        out *= np.float32(np.sqrt(2))
        return out

    def noise(self, tilt=1.0, lo=20.0, hi=7800.0, peaks=()):
        """Noise with a power spectrum ~ f**-tilt between ``lo`` and ``hi`` Hz and log-normal humps.

        ``peaks`` holds ``(centre_hz, width_octaves, gain)`` triples. Random-phase synthesis: the
        magnitude of every rfft bin follows the shape and its phase is uniform, which gives stationary,
        Gaussian-like noise four times faster than drawing Gaussian spectra. Returns unit RMS.
        """
        mag = _shape(self.n, float(tilt), float(lo), float(hi),
                     tuple((float(2 ** (round(np.log2(fc) * 140) / 140)), float(w), float(g)) for fc, w, g in peaks))
        ph = self.rng.random(mag.size, dtype=np.float32)
        ph *= np.float32(2 * np.pi)
        spec = np.empty(mag.size, np.complex64)
        spec.real = np.cos(ph) * mag
        spec.imag = np.sin(ph) * mag
        x = np.fft.irfft(spec, self.n).astype(np.float32, copy=False)
        x *= np.float32(1 / (np.sqrt(np.dot(x, x) / x.size) + 1e-12))
        return x

    def impacts(self, times, amps, modes, noise_tau=0.002, noise_weight=0.3, variants=4):
        """Impacts at ``times`` (s) with peak ``amps``; each a sum of damped sines ``(freq, tau, weight)``.

        A few kernel variants (resonances jittered by ~3 %) are drawn and picked at random per impact.
        """
        out = np.zeros(self.n, np.float32)
        times = np.asarray(times, float)
        keep = (times >= 0) & (times < self.n / SR)
        times, amps = times[keep], np.broadcast_to(np.asarray(amps, float), keep.shape)[keep]
        if times.size == 0:
            return out
        rng = self.rng
        longest = max([tau for _, tau, _ in modes] + [noise_tau])
        length = int(min(5 * longest, 0.25) * SR) + 1
        tk = np.arange(length, dtype=np.float32) / np.float32(SR)
        kernels = []
        for _ in range(variants):
            k = np.zeros(length, np.float32)
            for f, tau, w in modes:
                f = min(f * (1 + 0.03 * rng.standard_normal()), 7500)
                k += np.float32(w) * np.exp(-tk / np.float32(tau)) * np.sin(
                    np.float32(2 * np.pi * f) * tk + np.float32(rng.uniform(0, 2 * np.pi)))
            if noise_weight:
                k += np.float32(noise_weight) * np.exp(-tk / np.float32(noise_tau)) * rng.standard_normal(
                    length, dtype=np.float32)
            kernels.append(k / (np.abs(k).max() + 1e-12))
        starts = (times * SR).astype(int)
        choice = rng.integers(0, variants, size=starts.size)
        for s, a, c in zip(starts, amps, choice):
            m = min(length, self.n - s)
            out[s:s + m] += np.float32(a) * kernels[c][:m]
        return out


def _periodic(period, duration, rng, jitter=0.0, offsets=(0.0,), start=None):
    """Event times of a periodic pattern (random start unless given), with Gaussian timing jitter (s)."""
    if start is None:
        start = rng.uniform(0, period)
    base = np.arange(start - period, duration + period, period)
    times = (base[:, None] + np.asarray(offsets)[None, :]).ravel()
    if jitter:
        times = times + rng.normal(0, jitter, times.size)
    return np.sort(times)


def _db(x):
    return 10.0 ** (x / 20.0)


# ------------------------------------------------------------------------------------ unit parameters

def _unit_params(mtype, urng):
    """Parameters of one machine (ID or section); everything a clip of it needs besides the clip's noise."""
    r = urng
    p = {
        "snr_db": r.uniform(-2, 8) if mtype in ("fan", "pump", "slider", "valve", "gearbox") else r.uniform(3, 12),
        "bg_tilt": r.uniform(0.6, 1.4),
        "bg_peak": (r.uniform(150, 2500), r.uniform(0.6, 1.5), r.uniform(0.5, 3.0)),
        "bg_hum": (r.choice([50.0, 60.0]), r.uniform(0, 0.25)),
        "bg_knock_rate": r.uniform(0.1, 0.8),
        "factory_tilt": r.uniform(0.3, 0.9),
        "factory_peak": (r.uniform(300, 4000), r.uniform(0.5, 1.2), r.uniform(2.0, 6.0)),
        "factory_db": r.uniform(3, 7),
        "whine_f": r.uniform(1800, 6500),
        "noise_fc": r.uniform(400, 5000),
        "am_rate": r.uniform(0.5, 6.0),
    }
    if mtype == "fan":
        p.update(f_rot=r.uniform(14, 32), blades=int(r.integers(4, 10)), n_bpf=int(r.integers(4, 9)),
                 bpf_decay=r.uniform(0.5, 1.2), rot_level=r.uniform(0.05, 0.25),
                 aero=(r.uniform(300, 2500), r.uniform(0.8, 1.8)), aero_db=r.uniform(-6, 2),
                 aero_tilt=r.uniform(0.3, 1.0))
    elif mtype == "pump":
        p.update(f0=r.uniform(24, 50), n_harm=int(r.integers(8, 20)), decay=r.uniform(0.4, 1.1),
                 flow_hi=r.uniform(400, 2000), flow_db=r.uniform(-4, 4),
                 surge=(r.uniform(0.2, 1.0), r.uniform(0.1, 0.4)),
                 pulse_div=int(r.integers(1, 4)), pulse_db=r.uniform(-20, -8), pulse_f=r.uniform(200, 900))
    elif mtype == "slider":
        p.update(period=r.uniform(1.2, 2.8), duty=r.uniform(0.45, 0.75), fric_fc=r.uniform(800, 3500),
                 fric_w=r.uniform(0.5, 1.2), motor_f0=r.uniform(180, 520), n_harm=int(r.integers(3, 8)),
                 motor_db=r.uniform(-8, 0), stop_modes=[(r.uniform(400, 3000), r.uniform(0.01, 0.04), 1.0),
                                                         (r.uniform(2000, 6000), r.uniform(0.003, 0.01), 0.5)],
                 stop_db=r.uniform(4, 12))
    elif mtype == "valve":
        n_clicks = int(r.integers(2, 5))
        p.update(period=r.uniform(0.7, 2.2), offsets=np.sort(r.uniform(0, 0.6, n_clicks)),
                 click_amps=r.uniform(0.5, 1.0, n_clicks),
                 modes=[(r.uniform(800, 3500), r.uniform(0.004, 0.02), 1.0),
                        (r.uniform(3000, 7000), r.uniform(0.002, 0.006), r.uniform(0.3, 0.8))],
                 click_db=r.uniform(10, 18), hiss_db=r.uniform(-16, -8), hiss_fc=r.uniform(1500, 5000))
    elif mtype == "gearbox":
        p.update(f_shaft=r.uniform(8, 25), teeth=int(r.integers(15, 40)), n_mesh=int(r.integers(2, 5)),
                 side_depth=r.uniform(0.08, 0.2), hum_f0=r.uniform(45, 100), hum_db=r.uniform(-10, -3),
                 bearing=(r.uniform(2000, 6000), r.uniform(0.5, 1.0)), bearing_db=r.uniform(-14, -6))
    elif mtype in ("ToyCar", "ToyTrain"):
        p.update(f_motor=r.uniform(110, 320), n_harm=int(r.integers(6, 14)), decay=r.uniform(0.3, 0.9),
                 poles=int(r.integers(2, 7)), gear_ratio=int(r.integers(6, 15)), gear_db=r.uniform(-12, -4),
                 wheel_div=r.uniform(20, 50), roll=(r.uniform(200, 1500), r.uniform(0.8, 1.5)),
                 roll_db=r.uniform(-6, 2), roll_am=r.uniform(0.1, 0.35), jitter=r.uniform(0.004, 0.012))
        if mtype == "ToyTrain":
            p.update(joint_period=r.uniform(0.35, 0.9), joint_gap=r.uniform(0.04, 0.12),
                     joint_modes=[(r.uniform(1500, 5000), r.uniform(0.003, 0.012), 1.0),
                                  (r.uniform(300, 1200), r.uniform(0.01, 0.03), 0.6)],
                     joint_db=r.uniform(4, 10))
    elif mtype == "ToyConveyor":
        p.update(f0=r.uniform(40, 95), n_harm=int(r.integers(3, 9)), decay=r.uniform(0.6, 1.3),
                 roller_f=r.uniform(8, 20), roller_k=int(r.integers(20, 60)), roller_db=r.uniform(-14, -6),
                 belt=(r.uniform(300, 2500), r.uniform(0.8, 1.6)), belt_db=r.uniform(-4, 2),
                 seam_period=r.uniform(0.8, 2.5), seam_db=r.uniform(0, 8),
                 seam_modes=[(r.uniform(80, 400), r.uniform(0.02, 0.06), 1.0), (r.uniform(800, 2500), 0.005, 0.3)])
    else:  # a user-named type: a generic rotating machine
        p.update(f0=r.uniform(30, 120), n_harm=int(r.integers(4, 12)), decay=r.uniform(0.4, 1.2),
                 flow_hi=r.uniform(500, 3000), flow_db=r.uniform(-6, 2), surge=(r.uniform(0.2, 1.0), 0.2),
                 pulse_div=1, pulse_db=-30.0, pulse_f=500.0)
    return p


# --------------------------------------------------------------------------------------- the machines

def _harm_amps(n, decay, rng, load=0.0):
    k = np.arange(1, n + 1, dtype=float)
    amps = k ** (-decay * (1 - 0.35 * load)) * np.exp(0.15 * rng.standard_normal(n))
    return k, amps


def _machine(mtype, p, c, kind, sev, clip):
    """The machine component (before the background) of one clip.

    ``c`` holds the operating condition ``speed`` (a factor), ``load`` (0-1), ``noise`` (0/1); ``kind`` and
    ``sev`` (0-1) the anomaly (None for a normal clip).
    """
    rng = clip.rng
    dur = clip.n / SR
    speed, load = c["speed"], c["load"]
    # natural variation of every clip: speed ~0.6 % (levels and timbre vary below and in _mix)
    speed = speed * (1 + 0.006 * rng.standard_normal())
    if kind == "shift":
        speed *= 1 + rng.choice([-1, 1]) * (0.01 + 0.03 * sev)
    parts = []

    if mtype == "fan":
        f_rot = p["f_rot"] * speed
        ph = clip.phase(f_rot, 0.003, 0.4)
        ks = [1, 2, 3] + [p["blades"] * m for m in range(1, p["n_bpf"] + 1)]
        amps = [p["rot_level"], p["rot_level"] / 2, p["rot_level"] / 4] + list(
            np.arange(1, p["n_bpf"] + 1) ** -p["bpf_decay"] * np.exp(0.2 * rng.standard_normal(p["n_bpf"])))
        if kind == "imbalance":  # unbalanced rotor: strong rotation harmonic and a wobble
            amps[0] += 0.03 + 0.15 * sev
        tones = clip.partials(ph, f_rot, ks, amps)
        if kind == "imbalance":
            tones *= 1 + np.float32(0.1 + 0.25 * sev) * np.sin(ph)
        fc, w = p["aero"]
        aero = clip.noise(p["aero_tilt"], 60, 7800, [(fc * speed ** 0.5, w, 4.0)])
        aero *= 1 + np.float32(0.15) * clip.slow(0.5)
        parts += [tones, _db(p["aero_db"] + 6 * load + 3 * np.log2(speed)) * aero]
        if kind == "rub":
            times = _periodic(1 / f_rot, dur, rng, 0.0003)
            times = times[rng.random(times.size) < 0.2 + 0.4 * sev]
            parts.append(clip.impacts(times, _db(-4 + 8 * sev), [(rng.uniform(2500, 6000), 0.002, 1.0)],
                                      noise_weight=0.5))

    elif mtype == "pump" or mtype not in _KNOBS:  # a type of the user's own: pump-like
        f0 = p["f0"] * speed
        ph = clip.phase(f0, 0.003, 0.3)
        ks, amps = _harm_amps(p["n_harm"], p["decay"], rng, load)
        parts.append(clip.partials(ph, f0, ks, amps))
        rate, depth = p["surge"]
        flow = clip.noise(1.0, 30, p["flow_hi"] * (1 + 0.5 * load), [])
        flow_mod = 1 + np.float32(depth) * clip.slow(rate)
        if kind == "clog":  # clogging: deeper and faster flow fluctuation
            flow_mod = 1 + np.float32(depth + 0.25 + 0.35 * sev) * clip.slow(rate * 3 + 1)
        parts.append(_db(p["flow_db"] + 5 * load) * flow * np.maximum(flow_mod, 0))
        times = _periodic(p["pulse_div"] / f0, dur, rng, 0.0005)
        parts.append(clip.impacts(times, _db(p["pulse_db"] + 6), [(p["pulse_f"], 0.01, 1.0)], noise_weight=0.1))
        if kind == "cavitation":  # random crackle of collapsing bubbles
            n_ev = rng.poisson((20 + 60 * sev) * dur)
            times = rng.uniform(0, dur, n_ev)
            parts.append(clip.impacts(times, _db(-4 + 10 * sev) * rng.uniform(0.3, 1, n_ev),
                                      [(rng.uniform(3000, 7000), 0.0015, 1.0)], noise_tau=0.001,
                                      noise_weight=1.0))
        if kind == "leak":  # a leak: high-frequency hiss
            parts.append(_db(-27 + 10 * sev) * clip.noise(0.0, 2500, 7800, [(rng.uniform(3500, 6500), 0.5, 3)]))

    elif mtype == "slider":
        period = p["period"] / speed
        env, stops = _gate(clip, period, p["duty"], rng)
        f_m = p["motor_f0"] * speed
        ks, amps = _harm_amps(p["n_harm"], 0.8, rng, load)
        motor = clip.partials(clip.phase(f_m, 0.004, 1.0), f_m, ks, amps)
        fric_fc = p["fric_fc"] * (1 + 0.03 * rng.standard_normal())
        fric_db = 0.0 + 4 * load
        if kind == "friction":  # worn rail or missing grease: brighter and louder friction
            fric_fc *= 1 + 0.04 + 0.1 * sev
            fric_db += 0.5 + 1.5 * sev
        fric = clip.noise(0.5, 200, 7800, [(fric_fc, p["fric_w"], 6.0)])
        parts += [env * (_db(p["motor_db"]) * motor + _db(fric_db) * fric)]
        stop_amps = np.full(stops.size, _db(p["stop_db"] + 3 * load))
        if kind == "stop":  # irregular end stops: some missing, some doubled
            drop = rng.random(stops.size) < 0.15 + 0.25 * sev
            stop_amps[drop] = 0
            stops = stops + rng.normal(0, 0.01 + 0.03 * sev, stops.size)
            extra = stops[~drop] + rng.uniform(0.03, 0.08, (~drop).sum())
            extra = extra[rng.random(extra.size) < 0.6]
            stops = np.concatenate([stops, extra])
            stop_amps = np.concatenate([stop_amps, np.full(extra.size, (0.5 + 0.4 * sev) * _db(p["stop_db"]))])
        parts.append(clip.impacts(stops, stop_amps, p["stop_modes"]))
        if kind == "rail":  # damaged rail: irregular clicks while moving
            n_ev = rng.poisson((3 + 8 * sev) * dur)
            times = rng.uniform(0, dur, n_ev)
            amps_ev = _db(0 + 8 * sev) * env[np.minimum((times * SR).astype(int), clip.n - 1)]
            parts.append(clip.impacts(times, amps_ev, [(rng.uniform(1500, 5000), 0.004, 1.0)]))
        if kind == "squeal":
            parts.append(env * _db(-20 + 12 * sev) * clip.tone(rng.uniform(1500, 5000), 0.004))

    elif mtype == "valve":
        period = p["period"] / speed
        offsets = np.minimum(p["offsets"] * (1 / speed) ** 0.5, 0.85 * period)
        start = rng.uniform(0, period)
        times = _periodic(period, dur, rng, 0.002, offsets, start)
        amps = np.tile(p["click_amps"], times.size // len(p["offsets"]) + 1)[:times.size]
        amps = amps * np.exp(0.1 * rng.standard_normal(times.size))
        modes = [(f, tau, w) for f, tau, w in p["modes"]]
        if kind == "missing":
            amps = amps * (rng.random(times.size) >= 0.25 + 0.4 * sev)
        elif kind == "timing":
            times = times + rng.normal(0, 0.01 + 0.06 * sev, times.size)
        elif kind == "bounce":
            pick = rng.random(times.size) < 0.3 + 0.5 * sev
            times = np.concatenate([times, times[pick] + rng.uniform(0.008, 0.03, pick.sum())])
            amps = np.concatenate([amps, amps[pick] * (0.3 + 0.4 * sev)])
        elif kind == "resonance":
            factor = 1 + rng.choice([-1, 1]) * (0.02 + 0.07 * sev)
            modes = [(f * factor, tau, w) for f, tau, w in modes]
        parts.append(clip.impacts(times, amps * _db(p["click_db"] + 3 * load), modes))
        # flow hiss while the valve is open (between the first and last click of each cycle)
        open_env, _ = _gate(clip, period, min(0.9, (offsets[-1] - offsets[0] + 0.03) / period), rng, ramp=0.01,
                            start=start + offsets[0])
        hiss = clip.noise(0.3, 500, 7800, [(p["hiss_fc"], 0.7, 3.0)])
        hiss_env = open_env
        if kind == "leak":  # a leak: the hiss goes on while closed
            hiss_env = np.maximum(open_env, np.float32(_db(-10 + 8 * sev)))
        parts.append(_db(p["hiss_db"]) * hiss * hiss_env)

    elif mtype == "gearbox":
        f_s = p["f_shaft"] * speed
        ph_s = clip.phase(f_s, 0.003, 0.3)
        f_mesh = f_s * p["teeth"]
        ks, amps = _harm_amps(p["n_mesh"], 1.0, rng, load)
        mesh = clip.partials(ph_s, f_s, ks * p["teeth"], amps)
        depth = p["side_depth"] * (1 + load)
        if kind == "wear":
            depth += 0.15 + 0.35 * sev
        mesh *= 1 + np.float32(depth) * np.sin(ph_s + np.float32(rng.uniform(0, 6.28)))
        hk, ha = _harm_amps(5, 1.0, rng)
        hum = clip.partials(clip.phase(p["hum_f0"] * speed, 0.002, 0.3), p["hum_f0"] * speed, hk, ha)
        fc, w = p["bearing"]
        bearing = clip.noise(0.5, 200, 7800, [(fc, w, 5.0)])
        parts += [mesh * _db(2 * load), _db(p["hum_db"]) * hum, _db(p["bearing_db"] + 3 * load) * bearing]
        if kind == "tooth":  # a chipped tooth: one impact per shaft turn
            times = _periodic(1 / f_s, dur, rng, 0.0003)
            parts.append(clip.impacts(times, _db(-6 + 10 * sev), [(min(f_mesh * 1.5, 6000), 0.004, 1.0)]))

    elif mtype in ("ToyCar", "ToyTrain"):
        f_m = p["f_motor"] * speed
        ph = clip.phase(f_m, p["jitter"], 0.5)
        ks, amps = _harm_amps(p["n_harm"], p["decay"], rng, load)
        amps[p["poles"] - 1] *= 2.5  # commutator harmonic
        motor = clip.partials(ph, f_m, ks, amps)
        gear = clip.partials(ph, f_m, [p["gear_ratio"], 2 * p["gear_ratio"]], [1.0, 0.4])
        f_wheel = f_m / p["wheel_div"]
        ph_w = clip.phase(f_wheel, p["jitter"], 0.5)
        fc, w = p["roll"]
        roll = clip.noise(0.8, 60, 7000, [(fc, w, 4.0)])
        roll_am = p["roll_am"]
        if kind == "shaft":  # a bent shaft: strong modulation at the wheel rate
            roll_am += 0.2 + 0.4 * sev
            motor = motor * (1 + np.float32(0.1 + 0.3 * sev) * np.sin(ph_w))
        roll = roll * (1 + np.float32(roll_am) * np.sin(ph_w))
        parts += [motor, _db(p["gear_db"] + 3 * load) * gear, _db(p["roll_db"] + 4 * load) * roll]
        if kind == "gear":  # a damaged gear: a click every wheel turn
            times = _periodic(1 / f_wheel, dur, rng, 0.001)
            parts.append(clip.impacts(times, _db(-4 + 10 * sev), [(rng.uniform(2000, 6000), 0.003, 1.0)]))
        if mtype == "ToyTrain":
            jp = p["joint_period"] / speed
            times = _periodic(jp, dur, rng, 0.003, (0.0, p["joint_gap"] / speed))
            amps = np.exp(0.15 * rng.standard_normal(times.size))
            if kind == "joint":  # loose rail joints: irregular, some much louder and rattling
                times = times + rng.normal(0, 0.005 + 0.02 * sev, times.size)
                loose = rng.random(times.size) < 0.2 + 0.3 * sev
                amps = amps * np.where(loose, 1.5 + 1.5 * sev, 1.0)
                times = np.concatenate([times, times[loose] + rng.uniform(0.015, 0.04, loose.sum())])
                amps = np.concatenate([amps, amps[loose] * 0.6])
            parts.append(clip.impacts(times, amps * _db(p["joint_db"] + 3 * load), p["joint_modes"]))
            if kind == "scrape":  # a flange scraping the rail in bursts
                env = np.maximum(clip.slow(0.8), 0) ** 2
                scrape = clip.noise(0.2, 1500, 7800, [(rng.uniform(2500, 6000), 0.5, 4)])
                parts.append(_db(-16 + 8 * sev) * env * scrape)

    elif mtype == "ToyConveyor":
        f0 = p["f0"] * speed
        ks, amps = _harm_amps(p["n_harm"], p["decay"], rng, load)
        motor = clip.partials(clip.phase(f0, 0.003, 0.3), f0, ks, amps)
        f_r = p["roller_f"] * speed
        roller = clip.partials(clip.phase(f_r, 0.01, 0.5), f_r, p["roller_k"] + np.arange(-3, 4),
                               np.exp(0.3 * rng.standard_normal(7)))
        fc, w = p["belt"]
        belt = clip.noise(0.7, 80, 7800, [(fc, w, 3.0)]) * (1 + np.float32(0.1) * clip.slow(1.0))
        times = _periodic(p["seam_period"] / speed, dur, rng, 0.004)
        seam_amps = np.full(times.size, _db(p["seam_db"] + 3 * load))
        if kind == "belt":  # a torn belt: its loose edge flaps at irregular times
            n_ev = rng.poisson((1.5 + 3 * sev) * dur)
            flaps = clip.impacts(rng.uniform(0, dur, n_ev), _db(p["seam_db"] + 2 + 6 * sev),
                                 [(rng.uniform(1000, 3000), 0.015, 1.0)], noise_weight=0.5, noise_tau=0.005)
            parts.append(flaps)
        parts += [motor, _db(p["roller_db"]) * roller, _db(p["belt_db"] + 4 * load) * belt,
                  clip.impacts(times, seam_amps, p["seam_modes"], noise_weight=0.2)]
        if kind == "roller":  # a dry bearing in a roller
            parts.append(_db(-24 + 12 * sev) * clip.tone(rng.uniform(1500, 5000), 0.006))

    machine = np.sum(parts, axis=0).astype(np.float32)
    # anomaly kinds shared by several types
    if kind == "whine":
        machine = machine + np.float32(_db(-30 + 12 * sev)) * clip.tone(p["whine_f"] * rng.uniform(0.85, 1.15), 0.004)
    elif kind == "noise":
        machine = machine + np.float32(_db(-19 + 9 * sev)) * clip.noise(
            0.3, 100, 7800, [(p["noise_fc"] * rng.uniform(0.7, 1.4), 0.8, 5.0)])
    elif kind == "am":
        machine = machine * (1 + np.float32(0.2 + 0.35 * sev) * np.sin(
            np.float32(2 * np.pi * p["am_rate"] * rng.uniform(0.8, 1.25)) * clip.t))
    return machine


def _gate(clip, period, duty, rng, ramp=0.08, start=None):
    """A 0-1 envelope on for ``duty`` of every ``period`` (from ``start``, random unless given), with
    raised-cosine ramps. Returns the envelope and the times (s) at which each "on" stretch ends.
    """
    u = rng.uniform(0, period) if start is None else (-start) % period
    pos = (clip.t + np.float32(u)) / np.float32(period)
    pos -= np.floor(pos)
    r = min(ramp / period, duty / 2)
    env = np.clip(np.minimum(pos, duty - pos) / np.float32(r), 0, 1)
    ends = np.arange(duty * period - u - period, clip.n / SR + period, period)
    return (0.5 - 0.5 * np.cos(np.pi * env)).astype(np.float32), ends


def _background(p, c, clip):
    """Background noise of a clip: factory noise, mains hum, distant knocks (condition ``c['noise']``)."""
    rng = clip.rng
    dur = clip.n / SR
    if c["noise"]:
        fc, w, g = p["factory_peak"]
        bg = clip.noise(p["factory_tilt"], 30, 7800, [(fc, w, g)])
        level = _db(p["factory_db"])
        knock_rate = p["bg_knock_rate"] * 4
    else:
        fc, w, g = p["bg_peak"]
        bg = clip.noise(p["bg_tilt"], 30, 7800, [(fc, w, g)])
        level = 1.0
        knock_rate = p["bg_knock_rate"]
    bg = bg * (1 + np.float32(0.12) * clip.slow(0.3))
    f_hum, hum_level = p["bg_hum"]
    if hum_level > 0.02:
        ph = clip.phase(f_hum, 0.0005)
        bg = bg + np.float32(hum_level) * clip.partials(ph, f_hum, [1, 2, 3], [1.0, 0.5, 0.3])
    n_ev = rng.poisson(knock_rate * dur)
    if n_ev:
        bg = bg + clip.impacts(rng.uniform(0, dur, n_ev), rng.uniform(0.5, 3.0, n_ev),
                               [(rng.uniform(150, 800), 0.03, 1.0), (rng.uniform(800, 2500), 0.01, 0.4)])
    return np.float32(level) * bg


# ------------------------------------------------------------------------------------------- clips

_BASE = {"speed": 1.0, "load": 0.0, "noise": 0}


def _shifted_knob(mtype, unit):
    """The knob a 2021-2025 section shifts between source and target (cycled over the sections)."""
    knobs = _KNOBS.get(_voice(mtype), ("speed", "load", "noise"))
    return knobs[int(unit.split("_")[1]) % len(knobs)]


def _attribute_pairs(mtype, s, l, nz):
    """2022-2025 attributes: ``(parameter, value)`` pairs of the knobs the type has (``spd``, ``load``, ``noise``)."""
    names = {"speed": ("spd", ("1", "2", "3")[s]), "load": ("load", ("10", "20", "50")[l]),
             "noise": ("noise", ("A", "B")[nz])}
    return [names[k] for k in _KNOBS.get(_voice(mtype), ("speed", "load", "noise"))]


def _condition(year, mtype, unit, domain, crng, part="dev"):
    """Operating condition of one clip and its attribute string (``""`` in 2020)."""
    if year == 2020:
        return dict(_BASE), ""
    knob = _shifted_knob(mtype, unit)
    level = 2 if domain == "target" else int(crng.integers(0, 2))
    s, l, nz = (level if knob == "speed" else 0), (level if knob == "load" else 0), 0
    if knob == "noise":
        nz = 1 if domain == "target" else 0
    cond = {"speed": _SPEED[s], "load": _LOAD[l], "noise": nz}
    if year in LATER_YEARS:
        if mtype in HIDDEN_ATTRIBUTES[year][part]:
            return cond, "noAttribute"
        return cond, "_".join(f"{k}_{v}" for k, v in _attribute_pairs(mtype, s, l, nz))
    return cond, _attributes(mtype, s, l, nz)


def _anomaly(mtype, unit_rng_offset, index, crng):
    kinds = ANOMALY_KINDS.get(_voice(mtype), ("shift", "whine", "noise", "am"))
    return kinds[(index + unit_rng_offset) % len(kinds)], float(crng.uniform(0, 1))


def _mix(mtype, p, cond, kind, sev, clip):
    """Machine + background of one clip, before the unit gain."""
    rng = clip.rng
    machine = _machine(mtype, p, cond, kind, sev, clip)
    background = _background(p, cond, clip)
    machine_db = p["snr_db"] + 0.7 * rng.standard_normal()
    background_db = 1.5 * rng.standard_normal()
    return np.float32(_db(machine_db)) * machine + np.float32(_db(background_db)) * background


class _Unit:
    """Everything fixed for one machine unit: parameters, anomaly-kind offset and output gain."""

    def __init__(self, year, mtype, unit, seed, n):
        urng = _rng(seed, "unit", year, mtype, unit)
        self.voice = _voice(mtype)
        self.params = _unit_params(self.voice, urng)
        self.kind_offset = int(urng.integers(0, 100))
        # gain: a nominal clip (normal, source condition) of this unit is scaled to -26 dBFS RMS
        clip = _Clip(n, _rng(seed, "reference", year, mtype, unit))
        ref = _mix(self.voice, self.params, dict(_BASE), None, 0.0, clip)
        self.gain = 0.05 / float(np.sqrt(np.mean(ref.astype(np.float64) ** 2)) + 1e-12)


def _render(year, mtype, unit_obj, key, cond, anomaly, seed, n):
    clip = _Clip(n, _rng(seed, "clip", year, mtype, *key))
    kind, sev = anomaly if anomaly else (None, 0.0)
    x = _mix(unit_obj.voice, unit_obj.params, cond, kind, sev, clip)
    x *= np.float32(unit_obj.gain * _db(1.0 * clip.rng.standard_normal()))
    return x


def _to_pcm16(x):
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def render_clip(year, machine_type, unit, domain="", split="train", label="normal", index=0, seed=0,
                duration=10.0, part="dev"):
    """One synthetic recording as float32 in [-1, 1] (the clip :func:`generate` writes for these fields).

    Parameters
    ----------
    year : {2020, ..., 2025}
    machine_type : str
    unit : str
        ``"id_XX"`` (2020) or ``"section_XX"`` (2021-2025).
    domain : {"", "source", "target"}
    split : {"train", "test"}
    label : {"normal", "anomaly"}
    index : int
        The clip number (for eval test clips: the number before shuffling).

    Returns
    -------
    wave : np.ndarray
        float32, ``round(duration * 16000)`` samples.
    attributes : str
        The attribute string of the clip (``""`` in 2020; ``noAttribute`` for a hidden type of ``part``).
    """
    n = int(round(duration * SR))
    unit_obj = _Unit(year, machine_type, unit, seed, n)
    return _render_keyed(year, machine_type, unit, domain, split, label, index, seed, n, unit_obj, part)


def _render_keyed(year, mtype, unit, domain, split, label, index, seed, n, unit_obj, part="dev"):
    key = (unit, domain, split, label, index)
    cond, attributes = _condition(year, mtype, unit, domain, _rng(seed, "condition", year, mtype, *key), part)
    anomaly = None
    if label == "anomaly":
        anomaly = _anomaly(mtype, unit_obj.kind_offset, index, _rng(seed, "anomaly", year, mtype, *key))
    wave = _render(year, mtype, unit_obj, key, cond, anomaly, seed, n)
    return np.clip(wave, -1.0, 1.0), attributes


# ------------------------------------------------------------------------------------------ the sets

def _resolve_sizes(year, preset, overrides):
    if preset not in PRESETS:
        raise ASDError(f"unknown synthetic preset {preset!r}; expected one of {', '.join(PRESETS)}")
    sizes = dict(PRESETS[preset])
    if preset == "tiny" and year in LATER_YEARS:
        sizes["machine_types"] = TINY_LATER_TYPES[year]
    for k, v in overrides.items():
        if k not in sizes:
            raise ASDError(f"unknown synthetic size option {k!r}; expected one of {', '.join(sizes)}")
        if v is not None:
            sizes[k] = v
    types = sizes["machine_types"]
    if types is None:
        types = MACHINE_TYPES[year]
    types = tuple(types)
    unknown = [t for t in types if t not in MACHINE_TYPES[year]]
    if unknown:
        raise ASDError(f"machine type(s) {', '.join(unknown)} not in DCASE {year}; expected some of "
                       f"{', '.join(MACHINE_TYPES[year])}")
    sizes["machine_types"] = tuple(t for t in MACHINE_TYPES[year] if t in types)  # official order
    for k in ("n_train", "n_test_normal", "n_test_anomaly", "n_target_train"):
        sizes[k] = int(sizes[k])
        if sizes[k] < 0:
            raise ASDError(f"synthetic size {k}={sizes[k]} is negative; expected a count >= 0")
    if sizes["n_train"] < 1:
        raise ASDError("synthetic size n_train must be at least 1 (every unit needs training clips)")
    if sizes["n_test_normal"] + sizes["n_test_anomaly"] < 1:
        raise ASDError("synthetic sizes give no test clip; expected n_test_normal + n_test_anomaly >= 1")
    sizes["duration"] = float(sizes["duration"])
    if not 0.1 <= sizes["duration"] <= 60:
        raise ASDError(f"synthetic duration {sizes['duration']} s out of range; expected 0.1 to 60 s")
    return sizes


def _plan(year, sizes, parts, seed):
    """Every clip to write: dicts with the clip identity, its folder and file name (eval tests shuffled)."""
    plan = []
    seed_key = "plan"
    for part in parts:
        folder = f"{part}_data"
        for mtype in sizes["machine_types"]:
            later = year in LATER_YEARS
            for unit in OFFICIAL_UNITS[year][part].get(mtype, ()):
                domains = ("",) if year == 2020 else ("source", "target")
                eval_tests = []  # later years: both domains share one shuffled test folder
                for domain in domains:
                    n_train = sizes["n_train"] if domain != "target" else sizes["n_target_train"]
                    for i in range(n_train):
                        plan.append(dict(part=part, folder=folder, mtype=mtype, unit=unit, domain=domain,
                                         split="train", label="normal", index=i, sub="train"))
                    tests = [("normal", i) for i in range(sizes["n_test_normal"])] + \
                            [("anomaly", i) for i in range(sizes["n_test_anomaly"])]
                    sub = "test" if year == 2020 or later else f"{domain}_test"
                    if later and part == "eval":
                        eval_tests += [(domain, label, i) for label, i in tests]
                        continue
                    if part == "eval":
                        order = _rng(seed, seed_key, year, mtype, unit, domain).permutation(len(tests))
                        tests = [tests[j] for j in order]
                    for pos, (label, i) in enumerate(tests):
                        plan.append(dict(part=part, folder=folder, mtype=mtype, unit=unit, domain=domain,
                                         split="test", label=label, index=i, sub=sub,
                                         eval_index=pos if part == "eval" else None))
                if eval_tests:
                    order = _rng(seed, seed_key, year, mtype, unit).permutation(len(eval_tests))
                    for pos, j in enumerate(order):
                        domain, label, i = eval_tests[j]
                        plan.append(dict(part=part, folder=folder, mtype=mtype, unit=unit, domain=domain,
                                         split="test", label=label, index=i, sub="test", eval_index=pos))
    return plan


def _file_name(year, item, attributes):
    unit, label, index = item["unit"], item["label"], item["index"]
    if year == 2020:
        labelled = f"{label}_{unit}_{index:08d}.wav"
        if item.get("eval_index") is not None:
            return f"{unit}_{item['eval_index']:08d}.wav", labelled
        return labelled, labelled
    head = f"{unit}_{item['domain']}_{item['split']}"
    if item["split"] == "train":
        name = f"{head}_normal_{index:04d}" + (f"_{attributes}" if attributes else "") + ".wav"
        return name, name
    if year in LATER_YEARS:
        labelled = f"{head}_{label}_{index:04d}_{attributes}.wav"
        if item.get("eval_index") is not None:
            return f"{unit}_{item['eval_index']:04d}.wav", labelled
        return labelled, labelled
    labelled = f"{head}_{label}_{index:04d}.wav"
    if item.get("eval_index") is not None:
        return f"{head}_{item['eval_index']:04d}.wav", labelled
    return labelled, labelled


def generate(year, out_root, seed=0, preset="quick", parts=("dev", "eval"), progress=False, **sizes):
    """Write a synthetic data set in the exact DCASE ``year`` task 2 layout under ``out_root``.

    Parameters
    ----------
    year : {2020, ..., 2025}
    out_root : path
        Created if needed; must not already hold ``dev_data``/``eval_data``.
    seed : int
        Same seed, same bytes.
    preset : {"quick", "tiny", "medium"}
        Starting sizes (:data:`PRESETS`), each overridable by the keyword options below.
    parts : tuple of {"dev", "eval"}
        Which parts to write (the ground-truth file is written when "eval" is among them).
    progress : bool
        Show a progress bar.
    **sizes
        ``machine_types`` (subset of the year's official types, None = all), ``n_train`` (train clips per
        unit; per section and source domain in 2021), ``n_target_train`` (2021 target train clips per
        section), ``n_test_normal``, ``n_test_anomaly`` (test clips per unit, per domain in 2021),
        ``duration`` (seconds, default 10.0).

    Returns
    -------
    pathlib.Path
        ``out_root``.
    """
    year = int(year)
    if year not in (2020, 2021) + LATER_YEARS:
        raise ASDError(f"unsupported DCASE year {year}; expected 2020 or 2021 (or 2022-2025)")
    sizes = _resolve_sizes(year, preset, sizes)
    parts = tuple(parts)
    if not parts or any(p not in ("dev", "eval") for p in parts):
        raise ASDError(f"parts {parts!r}: expected a non-empty subset of ('dev', 'eval')")
    out_root = Path(out_root).expanduser()
    for folder in ("dev_data", "eval_data"):
        if (out_root / folder).exists():
            raise ASDError(f"{out_root / folder} already exists; expected an empty output folder "
                           "(synthetic data are never written over existing data)")
    n = int(round(sizes["duration"] * SR))
    plan = _plan(year, sizes, parts, seed)
    units = {}
    gt_rows = {}
    attribute_rows = {}
    made_dirs = set()
    iterator = plan
    if progress:
        from tqdm import tqdm
        iterator = tqdm(plan, desc=f"synthetic DCASE {year}", unit="clip")
    for item in iterator:
        mtype, unit = item["mtype"], item["unit"]
        if (mtype, unit) not in units:
            units = {k: v for k, v in units.items() if k[0] == mtype}  # keep memory small
            units[(mtype, unit)] = _Unit(year, mtype, unit, seed, n)
        wave, attributes = _render_keyed(year, mtype, unit, item["domain"], item["split"], item["label"],
                                         item["index"], seed, n, units[(mtype, unit)], item["part"])
        name, original = _file_name(year, item, attributes)
        if year in LATER_YEARS and not (item["part"] == "eval" and item["split"] == "test"):
            attribute_rows.setdefault((item["folder"], mtype, unit), []).append(
                (f"{mtype}/{item['sub']}/{name}", attributes))
        folder = out_root / item["folder"] / mtype / item["sub"]
        if folder not in made_dirs:
            folder.mkdir(parents=True, exist_ok=True)
            made_dirs.add(folder)
        sf.write(str(folder / name), _to_pcm16(wave), SR, subtype="PCM_16", format="WAV")
        if item.get("eval_index") is not None:
            gt_rows.setdefault((mtype, unit, item["domain"]), []).append(
                (name, original, 1 if item["label"] == "anomaly" else 0))
    _write_attribute_files(out_root, attribute_rows)
    if "eval" in parts:
        _write_ground_truth(year, out_root, sizes["machine_types"], gt_rows)
    info = {"generator_version": GENERATOR_VERSION, "year": year, "seed": int(seed), "preset": preset,
            "parts": list(parts), **{k: (list(v) if isinstance(v, tuple) else v) for k, v in sizes.items()},
            "n_clips": len(plan)}
    (out_root / "synthetic_info.json").write_text(json.dumps(info, indent=1) + "\n")
    return out_root


def _write_attribute_files(out_root, attribute_rows):
    """2022-2025: ``<part>_data/<type>/attributes_XX.csv`` (``file_name,d1p,d1v[,d2p,d2v...]``)."""
    for (folder, mtype, unit), rows in sorted(attribute_rows.items()):
        rows = sorted(rows)
        fields = [a.split("_") if a != "noAttribute" else ["noAttribute", ""] for _, a in rows]
        n_pairs = max(len(f) for f in fields) // 2
        header = ["file_name"] + [f"d{k + 1}{c}" for k in range(n_pairs) for c in ("p", "v")]
        lines = [",".join(header)]
        lines += [",".join([path] + f + [""] * (2 * n_pairs - len(f))) for (path, _), f in zip(rows, fields)]
        (out_root / folder / mtype / f"attributes_{unit.split('_')[1]}.csv").write_text("\n".join(lines) + "\n")


def _write_ground_truth(year, out_root, machine_types, gt_rows):
    if year in LATER_YEARS:  # the official evaluator's three folders, one file per type and section
        sections = {}
        for (mtype, unit, domain), rows in gt_rows.items():
            sections.setdefault((mtype, unit), []).extend((name, orig, lab, domain) for name, orig, lab in rows)
        for sub in ("ground_truth_data", "ground_truth_domain", "ground_truth_attributes"):
            (out_root / sub).mkdir(parents=True, exist_ok=True)
        for (mtype, unit), rows in sorted(sections.items()):
            rows.sort()
            file = f"ground_truth_{mtype}_{unit}_test.csv"
            (out_root / "ground_truth_data" / file).write_text("".join(f"{n},{lab}\n" for n, _, lab, _ in rows))
            (out_root / "ground_truth_domain" / file).write_text(
                "".join(f"{n},{int(d == 'target')}\n" for n, _, _, d in rows))
            (out_root / "ground_truth_attributes" / file).write_text(
                "".join(f"{n},{o[:-4]}\n" for n, o, _, _ in rows))
        return
    if year == 2020:
        lines = []
        for mtype in machine_types:
            rows = [r for (t, _, _), rs in sorted(gt_rows.items()) if t == mtype for r in rs]
            if not rows:
                continue
            lines.append(mtype)
            lines += [f"{name},{orig},{lab}" for name, orig, lab in sorted(rows)]
        (out_root / "eval_data_list.csv").write_text("\n".join(lines) + "\n")
        return
    folder = out_root / "ground_truth"
    folder.mkdir(parents=True, exist_ok=True)
    for (mtype, unit, domain), rows in sorted(gt_rows.items()):
        text = "".join(f"{name},{lab}\n" for name, _, lab in sorted(rows))
        (folder / f"ground_truth_{mtype}_{unit}_{domain}_test.csv").write_text(text)


# ------------------------------------------------------------------------------------------ the cache

def is_synthetic(root) -> bool:
    """True when ``root`` was written by :func:`generate` (it holds ``synthetic_info.json``)."""
    return (Path(root) / "synthetic_info.json").is_file()


def default_cache_root() -> Path:
    """``$ASD_CACHE_DIR/synthetic`` when the variable is set, else ``~/.cache/asd_reference/synthetic``."""
    env = os.environ.get("ASD_CACHE_DIR")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "asd_reference"
    return base / "synthetic"


_OURS = {"dev_data", "eval_data", "ground_truth", "eval_data_list.csv", "synthetic_info.json", _MARKER,
         "ground_truth_data", "ground_truth_domain", "ground_truth_attributes"}


def ensure_synthetic(year, cache_dir=None, preset="quick", seed=0) -> Path:
    """The root of a synthetic DCASE ``year`` set, generated once into a cache folder.

    The set lives in ``<cache_dir>/<year>_<preset>_<seed>`` (``cache_dir`` defaults to
    :func:`default_cache_root`). It is generated into a temporary sibling folder and moved into place with
    a completion marker, so an interrupted generation is never used: a folder without the marker (or with
    one from another generator version) is removed and generated again.
    """
    year = int(year)
    _resolve_sizes(year, preset, {})  # validate before touching the disk
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    root = base / f"{year}_{preset}_{int(seed)}"
    expected = {"generator_version": GENERATOR_VERSION, "year": year, "preset": preset, "seed": int(seed)}
    if _complete(root, expected):
        return root
    if root.exists():
        stray = sorted(p.name for p in root.iterdir() if p.name not in _OURS)
        if stray:
            raise ASDError(f"{root} holds files the generator did not write ({', '.join(stray[:3])}); "
                           "expected an incomplete synthetic set there: move them or choose another cache_dir")
        shutil.rmtree(root)
    logging.getLogger(__name__).info("generating synthetic DCASE %d data (preset %r, seed %d) into %s (once)",
                                     year, preset, int(seed), root)
    with atomic_dir(root, keep_existing=True) as tmp:  # another process may finish the same set first
        generate(year, tmp, seed=seed, preset=preset, progress=sys.stderr.isatty())
        (tmp / _MARKER).write_text(json.dumps(expected) + "\n")
    if not _complete(root, expected):
        raise ASDError(f"{root}: another process left an incomplete synthetic set there; remove the folder and "
                       "run again")
    return root


def _complete(root, expected):
    try:
        return json.loads((Path(root) / _MARKER).read_text()) == expected
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------- CLI

def main(argv=None):
    """``python -m asdcore.synthetic {2020,2021} OUT [--preset P] [--seed N] [size options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m asdcore.synthetic",
        description="Write a synthetic machine-sound data set in the exact DCASE 2020/2021 task 2 layout "
                    "(dev_data/, eval_data/ and the eval ground truth).")
    parser.add_argument("year", type=int, choices=(2020, 2021) + LATER_YEARS)
    parser.add_argument("out", help="output folder (must not already hold dev_data/ or eval_data/)")
    parser.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--machine-types", nargs="+", default=None, help="subset of the year's machine types")
    parser.add_argument("--parts", nargs="+", default=["dev", "eval"], choices=["dev", "eval"])
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-target-train", type=int, default=None)
    parser.add_argument("--n-test-normal", type=int, default=None)
    parser.add_argument("--n-test-anomaly", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None, help="seconds per clip (default 10.0)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        out = generate(args.year, args.out, seed=args.seed, preset=args.preset, parts=tuple(args.parts),
                       progress=sys.stderr.isatty(), machine_types=args.machine_types, n_train=args.n_train,
                       n_target_train=args.n_target_train, n_test_normal=args.n_test_normal,
                       n_test_anomaly=args.n_test_anomaly, duration=args.duration)
    except ASDError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    info = json.loads((Path(out) / "synthetic_info.json").read_text())
    where = {2020: "eval_data_list.csv", 2021: "ground_truth/"}.get(args.year, "ground_truth_data/ and its siblings")
    print(f"wrote {info['n_clips']} clips of synthetic DCASE {args.year} data to {out} "
          f"(eval ground truth: {where}) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
