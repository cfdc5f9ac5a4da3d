"""Write DEAP, SEED, DREAMER, FACED and THU-EP folders in their published on-disk formats, with
fake data.

The tests, the benchmarks and ``physioaffect datasets fake`` use these writers so that nobody
needs a signed end-user agreement to try the pipeline. Container, file names, variable names,
nesting and dtypes follow ``DATASETS.md``; only the number of subjects/trials and the trial
lengths are smaller. Any reader of the real files (``pickle.load(f, encoding="latin1")`` for
DEAP, ``scipy.io.loadmat`` for SEED/DREAMER, TorchEEG's loaders) reads them unchanged.

The signals are not noise only: every generator is deterministic given ``seed`` and the
subject index (so a test regenerates the exact arrays the writer wrote with
:func:`deap_subject_arrays` etc.), and the EEG carries a weak, rating-dependent alpha/beta
modulation so that a classifier has something (small) to find.

Assumptions where DATASETS.md does not state a dtype: DEAP ``data`` and ``labels`` are float64
(Python 2 pickles of float64 arrays, ~99 MiB per real file); SEED arrays and ``label`` are
double; DREAMER signals are double and the scores are uint8. FACED's ``subNNN.pkl`` is a
protocol-4 pickle of one float64 array with numpy-1 global names (``pickle.dump`` of FACED's
preprocessing, 2023); ``After_remark``'s fields are ``score, trial, vid, Accuracy, ResponseTime``
(as reported for the real files), of which only ``score`` (1 x 12, integers 0-7 as double) and
``vid`` carry meaning here: ``trial`` is the presentation number, ``Accuracy`` 1 and
``ResponseTime`` a plausible number of seconds (their real content is not documented). THU-EP's
files are MATLAB v7.3 (HDF5 behind MATLAB's 512-byte user block, ``MATLAB_class`` attributes)
with double arrays; bands 0-4 of ``data`` are band-passed copies (1-4, 4-8, 8-13, 13-30,
30-45 Hz: THU-EP does not document them) of the broadband band 5.

Every writer takes ``progress`` (a bar per subject, drawn when INFO messages are shown) and
``verbose`` (the package log level for that call, :func:`physioaffect.set_log_level`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from physioaffect.datasets.base import DatasetError
from physioaffect.datasets.safe_pickle import dump_numpy1, dump_py2
from physioaffect.log import progress_enabled, verbose

DEAP_SFREQ = 128
DEAP_BASELINE_S = 3
SEED_SFREQ = 200
SEED_PREFIXES = ("djc", "jl", "jj", "lqj", "ly", "mhw", "phl", "sxy", "wk", "ww", "wsf", "wyw",
                 "xyl", "ys", "zjy")
SEED_TRIAL_SAMPLES = (47001, 46601, 41201, 47601, 37001, 39001, 47401, 43201, 53001, 47401,
                      47001, 46601, 47001, 47601, 41201)
SEED_LABELS = (1, 0, -1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 0, 1, -1)
SEED_DATES = ("20140411", "20140418", "20140425")
DREAMER_EEG_SFREQ = 128
DREAMER_ECG_SFREQ = 256
DREAMER_BASELINE_SAMPLES = 7808  # 61 s at 128 Hz
FACED_SFREQ = 250
THU_EP_SFREQ = 250
THU_EP_BANDS = ((1.0, 4.0), (4.0, 8.0), (8.0, 13.0), (13.0, 30.0), (30.0, 45.0))


def _eeg_like(rng: np.random.Generator, n_ch: int, n_times: int, sfreq: float,
              alpha: np.ndarray | float = 1.0, beta: np.ndarray | float = 1.0) -> np.ndarray:
    """Pink-ish noise plus 10 Hz and 20 Hz rhythms, about 10 uV rms; shape (n_ch, n_times)."""
    x = lfilter([1.0], [1.0, -0.95], rng.standard_normal((n_ch, n_times)), axis=-1) * 2.0
    t = np.arange(n_times) / sfreq
    ph = rng.uniform(0, 2 * np.pi, (n_ch, 2))
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (n_ch,))[:, None]
    beta = np.broadcast_to(np.asarray(beta, dtype=float), (n_ch,))[:, None]
    x += 6.0 * alpha * np.sin(2 * np.pi * 10.0 * t + ph[:, :1])
    x += 3.0 * beta * np.sin(2 * np.pi * 20.0 * t + ph[:, 1:])
    return x


def _rng(seed: int, dataset: str, subject: int) -> np.random.Generator:
    return np.random.default_rng([seed, sum(dataset.encode()), subject])


# ---------------------------------------------------------------------------------------- DEAP
def deap_subject_arrays(subject: int, n_trials: int = 40, seconds: float = 60.0,
                        seed: int = 0) -> dict[str, np.ndarray]:
    """The dict written to ``s{subject:02d}.dat``.

    Returns
    -------
    dict
        ``data``: float64 (n_trials, 40, (3 + seconds) * 128); ``labels``: float64
        (n_trials, 4) in [1, 9] (valence, arousal, dominance, liking).
    """
    rng = _rng(seed, "deap", subject)
    n_times = int(round((DEAP_BASELINE_S + seconds) * DEAP_SFREQ))
    labels = np.round(rng.uniform(1.0, 9.0, (n_trials, 4)), 2)
    data = np.empty((n_trials, 40, n_times), dtype=np.float64)
    # Valence shifts frontal alpha asymmetry (left vs right), arousal beta power; weak on purpose.
    side = np.zeros(32)
    side[:16], side[16:] = 1.0, -1.0
    for t in range(n_trials):
        v, a = (labels[t, 0] - 5) / 4, (labels[t, 1] - 5) / 4
        eeg = _eeg_like(rng, 32, n_times, DEAP_SFREQ, alpha=1 + 0.25 * v * side, beta=1 + 0.25 * a)
        eeg[:, : DEAP_BASELINE_S * DEAP_SFREQ] *= 0.9
        data[t, :32] = eeg
        tt = np.arange(n_times) / DEAP_SFREQ
        data[t, 32:36] = rng.standard_normal((4, n_times)) * 20.0  # hEOG vEOG zEMG tEMG
        data[t, 36] = 5000 + 300 * a + np.cumsum(rng.standard_normal(n_times)) * 2  # GSR
        data[t, 37] = 1000 * np.sin(2 * np.pi * 0.25 * tt) + rng.standard_normal(n_times)  # resp
        data[t, 38] = 800 * np.sin(2 * np.pi * 1.2 * tt) + rng.standard_normal(n_times)  # pleth
        data[t, 39] = 32.0 + 0.01 * np.cumsum(rng.standard_normal(n_times)) / 10  # temperature
    return {"data": data, "labels": labels}


@verbose
def write_deap(out: str | Path, n_subjects: int = 32, seconds: float = 60.0, n_trials: int = 40,
               seed: int = 0, progress: bool = False, *,
               verbose: bool | str | int | None = None) -> Path:
    """Write ``s01.dat`` ... ``sNN.dat`` (Python 2 protocol-2 pickles) into ``out``.

    ``out`` plays the role of ``data_preprocessed_python/``. Returns ``out``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for s in _progress(range(1, n_subjects + 1), progress, "writing DEAP fixture"):
        arrays = deap_subject_arrays(s, n_trials, seconds, seed)
        with open(out / f"s{s:02d}.dat", "wb") as f:
            dump_py2({"labels": arrays["labels"], "data": arrays["data"]}, f)
        del arrays
    return out


# ---------------------------------------------------------------------------------------- SEED
def seed_trial_samples(seconds: float | None) -> list[int]:
    """Trial lengths of a fixture: the real ones, or scaled so the longest is ``seconds`` long."""
    if seconds is None:
        return list(SEED_TRIAL_SAMPLES)
    longest = max(SEED_TRIAL_SAMPLES)
    return [max(int(round(seconds * SEED_SFREQ * n / longest)), 2) for n in SEED_TRIAL_SAMPLES]


def seed_session_arrays(subject: int, session: int, seconds: float | None = 4.0,
                        n_trials: int = 15, seed: int = 0) -> dict[str, np.ndarray]:
    """Variables ``<prefix>_eeg1`` ... written to one SEED session file (62 x N doubles)."""
    rng = _rng(seed, "seed", subject * 10 + session)
    prefix = SEED_PREFIXES[(subject - 1) % len(SEED_PREFIXES)]
    lengths = seed_trial_samples(seconds)
    out = {}
    for k in range(1, n_trials + 1):
        emo = SEED_LABELS[k - 1]
        out[f"{prefix}_eeg{k}"] = _eeg_like(rng, 62, lengths[k - 1], SEED_SFREQ,
                                            alpha=1 + 0.2 * emo, beta=1 - 0.1 * emo)
    return out


@verbose
def write_seed(out: str | Path, n_subjects: int = 15, seconds: float | None = 4.0,
               n_sessions: int = 3, n_trials: int = 15, seed: int = 0,
               progress: bool = False, *,
               verbose: bool | str | int | None = None) -> Path:
    """Write a ``Preprocessed_EEG/`` folder: ``{subject}_{date}.mat``, ``label.mat``, ``readme.txt``.

    ``seconds``: length of the longest trial (the others scaled like the real ones);
    ``None`` writes the real lengths.
    """
    from scipy.io import savemat

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if n_trials > 15 or n_sessions > 3:
        raise DatasetError("SEED fixture: at most 15 trials and 3 sessions")
    for s in _progress(range(1, n_subjects + 1), progress, "writing SEED fixture"):
        for sess in range(1, n_sessions + 1):
            # Real dates differ per subject; keep them distinct and in session order.
            date = str(int(SEED_DATES[sess - 1]) + s % 5)
            savemat(out / f"{s}_{date}.mat", seed_session_arrays(s, sess, seconds, n_trials, seed),
                    do_compression=True)
    savemat(out / "label.mat", {"label": np.asarray(SEED_LABELS, dtype=np.float64)[None, :]})
    (out / "readme.txt").write_text(
        "Fake SEED folder written by physioaffect (fixture, not real data).\n"
        "Preprocessed EEG: downsampled to 200 Hz, 62 channels.\n"
        "label.mat: 1 positive, 0 neutral, -1 negative.\n"
    )
    return out


# ------------------------------------------------------------------------------------- DREAMER
def dreamer_subject_arrays(subject: int, seconds: float = 4.0, n_trials: int = 18,
                           baseline_seconds: float = 61.0, seed: int = 0) -> dict:
    """Arrays of one DREAMER subject (EEG/ECG baseline and stimuli as time x channel)."""
    rng = _rng(seed, "dreamer", subject)
    scores = rng.integers(1, 6, (3, n_trials))
    n_base = int(round(baseline_seconds * DREAMER_EEG_SFREQ))
    eeg_b, eeg_s, ecg_b, ecg_s = [], [], [], []
    for t in range(n_trials):
        # Clip lengths vary by clip (same clip lengths for every subject, as in DREAMER).
        n = int(round(seconds * DREAMER_EEG_SFREQ * (1 + 0.1 * (t % 4))))
        v, a = (scores[0, t] - 3) / 2, (scores[1, t] - 3) / 2
        eeg_b.append(_eeg_like(rng, 14, n_base, DREAMER_EEG_SFREQ).T + 4200.0)
        eeg_s.append(_eeg_like(rng, 14, n, DREAMER_EEG_SFREQ, 1 + 0.25 * v, 1 + 0.25 * a).T
                     + 4200.0)
        ecg_b.append(_ecg_like(rng, 2 * n_base))
        ecg_s.append(_ecg_like(rng, 2 * n, rate_hz=1.1 + 0.2 * a))
    return {"eeg_baseline": eeg_b, "eeg_stimuli": eeg_s, "ecg_baseline": ecg_b,
            "ecg_stimuli": ecg_s, "valence": scores[0], "arousal": scores[1],
            "dominance": scores[2], "age": str(20 + subject % 15),
            "gender": "male" if subject % 2 else "female"}


def _ecg_like(rng: np.random.Generator, n: int, rate_hz: float = 1.1) -> np.ndarray:
    t = np.arange(n) / DREAMER_ECG_SFREQ
    beat = np.exp(-(((t * rate_hz) % 1.0 - 0.5) ** 2) / 0.0008)
    x = np.stack([beat * 1.0, beat * 0.7], axis=1) * 1000 + rng.standard_normal((n, 2)) * 20
    return x + 2000.0


def _cell(items: list) -> np.ndarray:
    c = np.empty((len(items), 1), dtype=object)
    for i, it in enumerate(items):
        c[i, 0] = it
    return c


@verbose
def write_dreamer(out: str | Path, n_subjects: int = 23, seconds: float = 4.0,
                  n_trials: int = 18, baseline_seconds: float = 61.0, seed: int = 0,
                  progress: bool = False, *,
                  verbose: bool | str | int | None = None) -> Path:
    """Write ``DREAMER.mat`` into the folder ``out`` (or to ``out`` if it ends in ``.mat``).

    The nesting is the published one: ``DREAMER`` struct, ``Data`` 1 x N cell of subject
    structs with ``EEG``/``ECG`` structs of 18 x 1 cells of time x channel arrays.
    """
    from scipy.io import savemat

    out = Path(out)
    path = out if out.suffix == ".mat" else out / "DREAMER.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.empty((1, n_subjects), dtype=object)
    for s in _progress(range(1, n_subjects + 1), progress, "writing DREAMER fixture"):
        a = dreamer_subject_arrays(s, seconds, n_trials, baseline_seconds, seed)
        data[0, s - 1] = {
            "Age": a["age"],
            "Gender": a["gender"],
            "EEG": {"baseline": _cell(a["eeg_baseline"]), "stimuli": _cell(a["eeg_stimuli"])},
            "ECG": {"baseline": _cell(a["ecg_baseline"]), "stimuli": _cell(a["ecg_stimuli"])},
            "ScoreValence": a["valence"].astype(np.uint8)[:, None],
            "ScoreArousal": a["arousal"].astype(np.uint8)[:, None],
            "ScoreDominance": a["dominance"].astype(np.uint8)[:, None],
        }
    electrodes = np.empty((1, 14), dtype=object)
    from physioaffect.datasets.montages import DREAMER14

    for i, n in enumerate(DREAMER14):
        electrodes[0, i] = n
    dreamer = {
        "Data": data,
        "EEG_SamplingRate": float(DREAMER_EEG_SFREQ),
        "ECG_SamplingRate": float(DREAMER_ECG_SFREQ),
        "EEG_Electrodes": electrodes,
        "noOfSubjects": float(n_subjects),
        "noOfVideoSequences": float(n_trials),
        "Disclaimer": "Fake DREAMER file written by physioaffect (fixture, not real data).",
        "Provider": "physioaffect fixtures",
        "Version": "1.0.2",
        "Acknowledgement": "Format after Katsigiannis & Ramzan, DREAMER (2018).",
    }
    savemat(path, {"DREAMER": dreamer}, do_compression=False)
    return path


# --------------------------------------------------------------------------- FACED and THU-EP
def _faced_like_eeg(rng: np.random.Generator, scores: np.ndarray, n_times: int) -> np.ndarray:
    """EEG (32, n_times) in the FACED/THU-EP channel order, modulated by the 0-7 ratings.

    Valence (item 9) tilts alpha between left and right hemisphere, arousal (item 8) scales
    beta; weak on purpose, as in the other fixtures.
    """
    from physioaffect.datasets.montages import FACED32
    from physioaffect.streams.montage import load_montage

    side = np.zeros(len(FACED32))
    for left, right in load_montage("faced32").pairs:
        side[FACED32.index(left)], side[FACED32.index(right)] = 1.0, -1.0
    v, a = (scores[9] - 3.5) / 3.5, (scores[8] - 3.5) / 3.5
    return _eeg_like(rng, len(FACED32), n_times, FACED_SFREQ, alpha=1 + 0.25 * v * side,
                     beta=1 + 0.25 * a)


def faced_subject_arrays(subject: int, n_trials: int = 28, seconds: float = 30.0,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """What is written for FACED subject ``subject`` (0-based, file ``sub{subject:03d}.pkl``).

    Returns
    -------
    dict
        ``data``: float64 (n_trials, 32, seconds * 250) in video order, uV; ``scores``: float64
        (n_trials, 12) integers 0-7 per video (row k = video k + 1); ``vids``: int
        (n_trials,), the video shown at each presentation (a per-subject permutation).
    """
    rng = _rng(seed, "faced", subject)
    n_times = int(round(seconds * FACED_SFREQ))
    scores = rng.integers(0, 8, (n_trials, 12)).astype(np.float64)
    vids = rng.permutation(n_trials) + 1
    data = np.empty((n_trials, 32, n_times))
    for k in range(n_trials):
        data[k] = _faced_like_eeg(rng, scores[k], n_times)
    return {"data": data, "scores": scores, "vids": vids}


@verbose
def write_faced(out: str | Path, n_subjects: int = 123, seconds: float = 30.0,
                n_trials: int = 28, seed: int = 0, progress: bool = False, *,
                verbose: bool | str | int | None = None) -> Path:
    """Write a FACED folder: ``Processed_data/subNNN.pkl`` and ``Rating/subNNN/After_remarks.mat``.

    ``Rating/`` is the layout EmT's official loader reads (FACED ships the same files under
    ``Data/subNNN/``). ``After_remark`` lists the presentations in the order shown, each with the
    video index ``vid``; the EEG is in video order. Returns ``out``.
    """
    from scipy.io import savemat

    out = Path(out)
    (out / "Processed_data").mkdir(parents=True, exist_ok=True)
    fields = ("score", "trial", "vid", "Accuracy", "ResponseTime")
    for s in _progress(range(n_subjects), progress, "writing FACED fixture"):
        a = faced_subject_arrays(s, n_trials, seconds, seed)
        with open(out / "Processed_data" / f"sub{s:03d}.pkl", "wb") as f:
            dump_numpy1(a["data"], f, protocol=4)
        remark = np.empty((n_trials, 1), dtype=[(name, object) for name in fields])
        rt = np.round(_rng(seed, "faced-rt", s).uniform(1.0, 6.0, n_trials), 3)
        for i, vid in enumerate(a["vids"]):
            remark[i, 0] = (a["scores"][vid - 1][None, :], float(i + 1), float(vid), 1.0,
                            float(rt[i]))
        folder = out / "Rating" / f"sub{s:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        savemat(folder / "After_remarks.mat", {"After_remark": remark}, do_compression=True)
        del a
    return out


def thu_ep_subject_arrays(subject: int, n_trials: int = 28, seconds: float = 30.0,
                          seed: int = 0) -> dict[str, np.ndarray]:
    """What is written for THU-EP subject ``subject`` (1-based, file ``sub_{subject}.mat``).

    Returns
    -------
    dict
        ``data``: float64 (seconds * 250, 32, n_trials, 6) as h5py reads it (band 5 broadband,
        uV); ``ratings``: float64 (12, n_trials), integers 0-7.
    """
    from scipy.signal import butter, sosfiltfilt

    rng = _rng(seed, "thu-ep", subject)
    n_times = int(round(seconds * THU_EP_SFREQ))
    ratings = rng.integers(0, 8, (12, n_trials)).astype(np.float64)
    data = np.empty((n_times, 32, n_trials, 6))
    for k in range(n_trials):
        eeg = _faced_like_eeg(rng, ratings[:, k], n_times)
        data[:, :, k, 5] = eeg.T
        for b, (lo, hi) in enumerate(THU_EP_BANDS):
            sos = butter(4, [lo, hi], btype="band", fs=THU_EP_SFREQ, output="sos")
            data[:, :, k, b] = sosfiltfilt(sos, eeg, axis=-1).T
    return {"data": data, "ratings": ratings}


@verbose
def write_thu_ep(out: str | Path, n_subjects: int = 80, seconds: float = 30.0,
                 n_trials: int = 28, seed: int = 0, progress: bool = False, *,
                verbose: bool | str | int | None = None) -> Path:
    """Write a THU-EP folder: ``EEG data/sub_N.mat`` and ``Ratings/ratings.mat`` (MATLAB v7.3).

    Returns ``out``.
    """
    out = Path(out)
    (out / "EEG data").mkdir(parents=True, exist_ok=True)
    ratings = np.empty((12, n_trials, n_subjects))
    for s in _progress(range(1, n_subjects + 1), progress, "writing THU-EP fixture"):
        a = thu_ep_subject_arrays(s, n_trials, seconds, seed)
        ratings[:, :, s - 1] = a["ratings"]
        write_mat73(out / "EEG data" / f"sub_{s}.mat", {"data": a["data"]})
        del a
    (out / "Ratings").mkdir(exist_ok=True)
    write_mat73(out / "Ratings" / "ratings.mat", {"ratings": ratings})
    return out


def write_mat73(path: str | Path, variables: dict[str, np.ndarray]) -> Path:
    """Write double arrays to a MATLAB v7.3 file as MATLAB does: HDF5 behind a 512-byte user
    block whose first 128 bytes are the MAT header (text, version 0x0200, endian ``IM``), each
    variable a dataset with a ``MATLAB_class`` attribute (null-terminated ASCII ``double``).

    Arrays are stored with the shape given, which is the shape h5py reads back (MATLAB would show
    the reversed shape). h5py opens the file and ``scipy.io.loadmat`` recognises it as v7.3.
    """
    import time

    import h5py

    path = Path(path)
    with h5py.File(path, "w", userblock_size=512, libver="earliest") as f:
        for name, arr in variables.items():
            arr = np.asarray(arr, dtype=np.float64)
            chunks = True if arr.size > 1024 else None  # MATLAB chunks and deflates big arrays
            ds = f.create_dataset(name, data=arr, chunks=chunks,
                                  compression="gzip" if chunks else None,
                                  compression_opts=3 if chunks else None)
            # MATLAB's attribute: 6-byte NULLTERM ASCII, written raw (no padding conversion).
            tid = h5py.h5t.C_S1.copy()
            tid.set_size(len(b"double"))
            tid.set_strpad(h5py.h5t.STR_NULLTERM)
            aid = h5py.h5a.create(ds.id, b"MATLAB_class", tid,
                                  h5py.h5s.create(h5py.h5s.SCALAR))
            aid.write(np.array(b"double", dtype="S6"), mtype=tid)
    text = (f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: "
            f"{time.strftime('%a %b %d %H:%M:%S %Y')} HDF5 schema 1.00 .").encode("ascii")
    header = text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as f:
        f.write(header)
    return path


def _progress(it, enabled: bool, desc: str):
    enabled = progress_enabled(enabled)
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, unit="subject")
