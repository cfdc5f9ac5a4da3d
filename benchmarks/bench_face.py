"""Face benchmark: analysis speed on one core and rPPG accuracy on the animated astronaut.

Floors (issue 9):
- >= 30 frames/s of 640 x 480 video analysed on one core (FaceMesh landmarks + expression,
  head pose, motion + POS rPPG), measured with the process pinned to one CPU.
- rPPG pulse rate within 3 bpm of the truth on the astronaut photograph animated with head
  motion and a skin-colour pulse, 50-120 bpm, read back from an MJPG video file.

Floors (issue 13), on the degraded set of :func:`physioaffect.face.synthetic.degraded_set`
(small skin regions, MJPEG at quality 20 and 5, MPEG-4, noise, low light, drift, motion, no
pulse) at rates other than those the quality gate was set on:
- every reported rate within 5 bpm of the truth (a video without a pulse reports none);
- a rate reported in at least 80 % of the clean videos' windows.

Issue 28 replaced the quality gate (a calibrated SNR gate per window length, set on pulse-free
noise, plus size, darkness, motion, forehead/cheek and hold checks; the degraded set feeds bare
colour traces, so only the SNR gate and the hold act here) and the window (6-10 s, growing from
the warm-up); ``bench_face_rppg.py`` runs the real video and degraded copies of it.

Run: ``.venv/bin/python benchmarks/bench_face.py [--quick]``; writes benchmarks/results/face.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

# one core for everything, including the threads MediaPipe/XNNPACK and OpenCV start later
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import cv2  # noqa: E402

cv2.setNumThreads(1)

from physioaffect.face.analysis import FaceAnalyzer, analyze_video  # noqa: E402
from physioaffect.face.synthetic import SyntheticFaceVideo  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "face.json"


def bench_speed(seconds: float) -> dict:
    video = SyntheticFaceVideo(pulse_bpm=72, duration=seconds, fps=30.0, size=(640, 480), seed=11)
    frames = list(video.frames())
    n_frames = len(frames)
    with tempfile.TemporaryDirectory() as tmp:
        path = video.write(Path(tmp) / "speed.avi")
        # analysis only (frames already in memory)
        with FaceAnalyzer() as fa:
            for f, t in zip(frames[:15], video.times[:15], strict=True):  # warm-up (model load)
                fa.process(f, t)
            fa.pulse.reset()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            for f, t in zip(frames, video.times + 100.0, strict=True):
                fa.process(f, t)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            # frames without a face cost more: FaceMesh finds nothing, then the Haar cascade runs
            empty = list(SyntheticFaceVideo(duration=2.0, no_face=[(0.0, 2.0)], seed=12).frames())
            nf0 = time.perf_counter()
            for k, f in enumerate(empty):
                fa.process(f, 200.0 + k / 30.0)
            no_face_fps = len(empty) / (time.perf_counter() - nf0)
            detect_t0 = time.perf_counter()
            for f in frames[:150]:
                fa._mesh.detect(f)
            detect_ms = (time.perf_counter() - detect_t0) / min(150, len(frames)) * 1000
        # the fallback for installs without MediaPipe: Haar cascade boxes, no landmarks
        with FaceAnalyzer(detector="haar") as haar:
            h0, hc0 = time.perf_counter(), time.process_time()
            for f, t in zip(frames[:90], video.times[:90], strict=True):
                haar.process(f, t)
            haar_fps = min(90, n_frames) / (time.perf_counter() - h0)
            haar_cpu_ms = (time.process_time() - hc0) / min(90, n_frames) * 1000
        # end to end from the file: decode + analysis
        e0 = time.perf_counter()
        table, info = analyze_video(path)
        e2e = time.perf_counter() - e0
    n = len(frames)
    return {
        "frame_size": [640, 480],
        "frames": n,
        "analysis_fps": n / wall,
        "analysis_ms_per_frame": wall / n * 1000,
        "cpu_ms_per_frame": cpu / n * 1000,
        "facemesh_ms_per_frame": detect_ms,
        "file_decode_plus_analysis_fps": info["n_frames"] / e2e,
        "no_face_fps": no_face_fps,
        "haar_only_fps": haar_fps,
        "haar_only_cpu_ms_per_frame": haar_cpu_ms,
        "status_counts": info["status_counts"],
        "floor_fps": 30.0,
        "passes": bool(n / wall >= 30.0),
    }


def bench_rppg(rates: list[float], seconds: float, **video_kwargs) -> dict:
    per_rate = []
    with tempfile.TemporaryDirectory() as tmp:
        for bpm in rates:
            video = SyntheticFaceVideo(
                pulse_bpm=bpm, duration=seconds, fps=30.0, seed=int(bpm * 10), **video_kwargs
            )
            path = video.write(Path(tmp) / f"pulse_{bpm:g}.avi")
            table, _ = analyze_video(path)
            est = table["pulse_rate"].to_numpy()
            valid = est[np.isfinite(est)]
            err = np.abs(valid - bpm)
            per_rate.append(
                {
                    "true_bpm": bpm,
                    "median_bpm": float(np.median(valid)),
                    "median_abs_error_bpm": float(np.median(err)),
                    "max_abs_error_bpm": float(err.max()),
                    "frames_with_rate": int(valid.size),
                    "fraction_within_3bpm": float(np.mean(err < 3.0)),
                    "median_snr_db": float(np.nanmedian(table["pulse_snr"])),
                }
            )
            r = per_rate[-1]
            print(
                f"  {bpm:5.0f} bpm: median {r['median_bpm']:6.2f}  max |err| {r['max_abs_error_bpm']:.2f}  "
                f"within 3 bpm {100 * r['fraction_within_3bpm']:.0f} % of {r['frames_with_rate']} frames"
            )
    worst_median = max(r["median_abs_error_bpm"] for r in per_rate)
    worst_frame = max(r["max_abs_error_bpm"] for r in per_rate)
    return {
        "video": f"astronaut 640x480, 30 fps, {seconds:g} s, MJPG; "
        + (", ".join(f"{k}={v}" for k, v in video_kwargs.items()) or "default SyntheticFaceVideo: "
           "4 px / 2 deg head sway, 1.5 % green pulse, noise sd 2"),
        "estimate": "PulseTracker defaults: POS, rate from the last 6-10 s (first after 6 s)",
        "rates": per_rate,
        "worst_median_abs_error_bpm": worst_median,
        "worst_frame_abs_error_bpm": worst_frame,
        "floor_bpm": 3.0,
        "passes": bool(worst_frame <= 3.0),
    }


def bench_degraded(rates: tuple[float, ...], seconds: float) -> dict:
    """The camera pulse on the degraded set: coverage and errors per condition, with the
    signal checks alone (no pixel count: the tracker's SNR gate, forehead/cheek check and
    hold) and as video analysis has it (the skin's pixel count too, so the size check acts)."""
    from physioaffect.face.synthetic import degraded_set
    from physioaffect.face.validate import degraded_colours, track_degraded

    variants = {"signal_checks": {}, "as_video_analysis": {}}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for case in degraded_set(rates=rates, duration=seconds):
            times, colours = degraded_colours(case, tmp)
            side = case.video.skin_side_px()
            truth = case.video.pulse_bpm if case.has_pulse else float("nan")
            for variant, pixels in (("signal_checks", None), ("as_video_analysis", side**2)):
                r = track_degraded(times, colours, skin_pixels=pixels)
                per = variants[variant]
                d = per.setdefault(case.name, {"windows": 0, "reported": 0, "wrong": 0,
                                               "wrong_over_10bpm": 0, "worst_reported_error_bpm": 0.0,
                                               "skin_px": round(side, 1), "reasons": {}})
                rep = np.isfinite(r["rates"])
                err = np.abs(r["rates"][rep] - truth) if case.has_pulse else np.full(rep.sum(), np.inf)
                d["windows"] += int(rep.size)
                d["reported"] += int(rep.sum())
                d["wrong"] += int((err > 5.0).sum())
                d["wrong_over_10bpm"] += int((err > 10.0).sum())
                if err.size and np.isfinite(err).all():
                    d["worst_reported_error_bpm"] = max(d["worst_reported_error_bpm"], round(float(err.max()), 2))
                for why in r["reasons"]:
                    if why != "ok":
                        d["reasons"][why] = d["reasons"].get(why, 0) + 1
    out: dict = {"rates_bpm": list(rates), "seconds": seconds, "fps": 30.0, "frame": "320 x 240",
                 "windows": "the tracker's estimate every 1 s once it holds its 10 s window"}
    for variant, per in variants.items():
        print(f"  {variant}:")
        for name, d in per.items():
            d["coverage"] = round(d["reported"] / max(d["windows"], 1), 3)
            print(f"    {name:10s} skin {d['skin_px']:5.1f} px  reported {d['coverage']:.0%} of "
                  f"{d['windows']} windows, wrong (> 5 bpm) {d['wrong']}, worst error "
                  f"{d['worst_reported_error_bpm']:.1f} bpm")
        wrong = sum(d["wrong"] for d in per.values())
        out[variant] = {"conditions": per, "wrong_total": wrong, "clean_coverage": per["clean"]["coverage"],
                        "passes": bool(wrong == 0 and per["clean"]["coverage"] >= 0.8)}
    out["passes"] = out["as_video_analysis"]["passes"]
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rates, shorter videos")
    ap.add_argument("--only", choices=["degraded"],
                    help="run only the degraded-video rPPG part (other results kept)")
    args = ap.parse_args()
    # rates (and so noise seeds) the quality gate was not set on: it was set on 58, 76, 97 and
    # 112 bpm, then raised after 52, 67, 88, 104 and 118 bpm showed a wrong MPEG-4 rate at 3.4 dB
    degraded_rates = (55.0, 93.0) if args.quick else (55.0, 72.0, 93.0, 110.0, 125.0)
    if args.only == "degraded":
        print(f"rPPG on the degraded set, rates {degraded_rates}:")
        result = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        result["rppg_degraded"] = bench_degraded(degraded_rates, 20.0)
        deg = result["rppg_degraded"]
        print(f"-> every reported rate within 5 bpm and >= 80 % clean coverage: signal checks "
              f"alone {'PASS' if deg['signal_checks']['passes'] else 'FAIL'}, as video analysis "
              f"{'PASS' if deg['as_video_analysis']['passes'] else 'FAIL'}")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"results written to {RESULTS}")
        return
    rates = [50.0, 85.0, 120.0] if args.quick else [float(r) for r in range(50, 121, 5)]
    seconds = 9.0 if args.quick else 12.0
    print(f"face benchmark on {os.cpu_count()} CPUs (pinned to 1), {platform.processor() or platform.machine()}")
    speed = bench_speed(6.0 if args.quick else 10.0)
    print(
        f"speed 640x480: {speed['analysis_fps']:.1f} frames/s analysis on one core "
        f"({speed['cpu_ms_per_frame']:.1f} ms CPU/frame, FaceMesh {speed['facemesh_ms_per_frame']:.1f} ms); "
        f"{speed['file_decode_plus_analysis_fps']:.1f} frames/s including MJPG decoding, "
        f"{speed['no_face_fps']:.1f} frames/s on frames without a face (Haar fallback), "
        f"{speed['haar_only_fps']:.1f} frames/s ({speed['haar_only_cpu_ms_per_frame']:.1f} ms CPU) "
        "with the Haar cascade alone (no MediaPipe) "
        f"-> floor 30 fps {'PASS' if speed['passes'] else 'FAIL'}"
    )
    print(f"rPPG accuracy over {len(rates)} rates:")
    rppg = bench_rppg(rates, seconds)
    print(
        f"rPPG worst per-frame error {rppg['worst_frame_abs_error_bpm']:.2f} bpm, worst median "
        f"{rppg['worst_median_abs_error_bpm']:.2f} bpm -> floor 3 bpm {'PASS' if rppg['passes'] else 'FAIL'}"
    )
    # not a floor: a harder video (weaker pulse, three times the motion, twice the noise) to
    # show where the method stands beyond the floor's conditions
    print("rPPG, harder video (0.6 % pulse, 12 px / 6 deg sway, noise sd 4):")
    hard = bench_rppg(
        [55.0, 85.0, 115.0], seconds, pulse_amplitude=0.006, motion_px=12.0, motion_deg=6.0, noise_std=4.0
    )
    print(f"rPPG on the degraded set, rates {degraded_rates}:")
    degraded = bench_degraded(degraded_rates, 20.0)
    import mediapipe

    result = {
        "machine": {
            "cpus_visible": os.cpu_count(),
            "cpus_used": 1,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "opencv": cv2.__version__,
            "mediapipe": mediapipe.__version__,
            "note": "shared 2-vCPU machine, other jobs running at the same time",
        },
        "quick": args.quick,
        "speed": speed,
        "rppg": rppg,
        "rppg_harder_not_a_floor": hard,
        "rppg_degraded": degraded,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {RESULTS}")


if __name__ == "__main__":
    main()
