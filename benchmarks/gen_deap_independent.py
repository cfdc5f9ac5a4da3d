"""A DEAP-format folder from a generator independent of the package's own fixtures.

The package's ``datasets fake deap`` plants pure 10 and 20 Hz sinusoids of rating-dependent
amplitude in every channel of identically distributed subjects. A training recipe tuned to that
could fail on anything else, so the training benchmark also runs on this folder, made with
none of the package's code (numpy, scipy and the standard library's pickle only):

- background: 1/f^b noise per source (b drawn per subject, 0.8-1.8) shaped in the frequency
  domain, mixed into 32 channels by a spatially smooth random matrix of each subject, with a
  subject gain of 0.4-2.5 (amplitude differences between heads and caps);
- alpha: band-limited noise (not a sinusoid) around each subject's own alpha frequency
  (8.5-11.5 Hz), occipito-parietal, reduced with arousal; valence tilts it left/right in frontal
  sources;
- arousal: band-limited beta (14-26 Hz) in fronto-central sources, stronger with arousal
  (effect size per subject 0.6-1.0 of the nominal);
- artefacts: eye blinks in frontal channels (0.1-0.5 per s), 50 Hz line noise of a subject
  amplitude, occasional electrode pops;
- ratings 1-9 with a subject bias (some subjects rate most films high), so classes are
  imbalanced within subjects and the majority baseline differs between folds;
- peripheral channels 33-40 in DEAP's order (hEOG, vEOG, zEMG, tEMG, GSR, respiration,
  plethysmograph, temperature) with arousal in skin-conductance responses and heart rate.

The file is a protocol-2 pickle of ``{"data": float64 (trials, 40, 8064), "labels": float64
(trials, 4)}`` like ``data_preprocessed_python/sNN.dat`` (3 s pre-trial baseline + trial).

Run: ``python benchmarks/gen_deap_independent.py OUT --subjects 4 --seconds 20``.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfilt

FS = 128
BASELINE_S = 3


def _coloured(rng: np.random.Generator, n: int, length: int, exponent: float) -> np.ndarray:
    """Unit-variance noise with a 1/f^exponent power spectrum, shape (n, length)."""
    spec = np.fft.rfft(rng.standard_normal((n, length)), axis=-1)
    f = np.fft.rfftfreq(length, 1 / FS)
    f[0] = f[1]
    x = np.fft.irfft(spec / f ** (exponent / 2), n=length, axis=-1)
    return x / x.std(axis=-1, keepdims=True)


def _band(rng: np.random.Generator, n: int, length: int, lo: float, hi: float) -> np.ndarray:
    sos = butter(4, [lo, hi], btype="band", fs=FS, output="sos")
    x = sosfilt(sos, rng.standard_normal((n, length + FS)), axis=-1)[:, FS:]
    return x / x.std(axis=-1, keepdims=True)


def subject(index: int, n_trials: int, seconds: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 7919, index])
    length = int((BASELINE_S + seconds) * FS)
    n_ch = 32
    # a spatially smooth mixing: sources on a ring, each spreads to its neighbours
    pos = np.linspace(0, 2 * np.pi, n_ch, endpoint=False)
    dist = np.abs(np.angle(np.exp(1j * (pos[:, None] - pos[None, :]))))
    mix = np.exp(-(dist / rng.uniform(0.3, 0.7)) ** 2) * rng.uniform(0.6, 1.4, (n_ch, n_ch))
    gain = rng.uniform(0.4, 2.5)
    exponent = rng.uniform(0.8, 1.8)
    iaf = rng.uniform(8.5, 11.5)
    effect = rng.uniform(0.6, 1.0)
    line = rng.uniform(0.0, 3.0)
    bias = rng.uniform(-1.5, 1.5)
    frontal, posterior = np.arange(0, 10), np.arange(18, 30)
    left = np.arange(n_ch) % 2 == 0
    ratings = np.clip(rng.normal(5 + bias, 2.0, (n_trials, 4)), 1, 9).round(2)
    data = np.empty((n_trials, 40, length))
    t = np.arange(length) / FS
    for k in range(n_trials):
        v, a = (ratings[k, 0] - 5) / 4, (ratings[k, 1] - 5) / 4  # -1 .. 1
        src = 8.0 * _coloured(rng, n_ch, length, exponent)
        alpha = _band(rng, n_ch, length, iaf - 1.5, iaf + 1.5)
        amp_alpha = np.full(n_ch, 2.0)
        amp_alpha[posterior] = 7.0 * (1 - 0.25 * effect * a)
        amp_alpha[frontal] *= 1 + 0.2 * v * np.where(left[frontal], 1, -1)
        beta = _band(rng, n_ch, length, 14.0, 26.0)
        amp_beta = np.full(n_ch, 1.5)
        amp_beta[:16] = 2.5 * (1 + 0.45 * effect * a)
        src += amp_alpha[:, None] * alpha + amp_beta[:, None] * beta
        eeg = gain * (mix @ src) / np.sqrt(n_ch / 4)
        eeg[:, : BASELINE_S * FS] *= 0.95
        eeg += line * np.sin(2 * np.pi * 50 * t + rng.uniform(0, 2 * np.pi))
        for onset in rng.uniform(0, length / FS - 0.4, rng.poisson(0.3 * length / FS)):
            i = int(onset * FS)
            blink = 80 * np.hanning(int(0.3 * FS))
            eeg[:4, i:i + blink.size] += blink[: eeg[:, i:i + blink.size].shape[1]]
        if rng.random() < 0.2:  # an electrode pop
            c, i = rng.integers(n_ch), rng.integers(length - FS)
            eeg[c, i:] += rng.normal(0, 60)
        data[k, :32] = eeg
        data[k, 32:36] = rng.standard_normal((4, length)) * 15
        scr_rate = 2 + 6 * (a + 1) / 2  # per minute
        gsr = np.full(length, 3000 + rng.normal(0, 500))
        for onset in rng.uniform(0, length / FS, rng.poisson(scr_rate * length / FS / 60)):
            i = int(onset * FS)
            tt = np.arange(length - i) / FS
            gsr[i:] += 40 * (1 - np.exp(-tt / 0.7)) * np.exp(-tt / 4)
        data[k, 36] = gsr + rng.standard_normal(length)
        data[k, 37] = 500 * np.sin(2 * np.pi * rng.uniform(0.2, 0.33) * t)
        hr = (68 + rng.normal(0, 6) + 8 * a) / 60
        data[k, 38] = 600 * np.sin(2 * np.pi * hr * t) ** 2 + rng.standard_normal(length) * 5
        data[k, 39] = 33 + 0.05 * np.cumsum(rng.standard_normal(length)) / FS
    return {"labels": ratings, "data": data}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for s in range(1, a.subjects + 1):
        with open(out / f"s{s:02d}.dat", "wb") as f:
            pickle.dump(subject(s, a.trials, a.seconds, a.seed), f, protocol=2)
    print(f"wrote {a.subjects} subjects to {out}")


if __name__ == "__main__":
    main()
