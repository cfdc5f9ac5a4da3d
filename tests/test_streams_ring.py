"""Ring buffer: never blocks the producer, counts what a slow reader missed."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from physioaffect.streams import Chunk, RingBuffer, StreamHub, StreamInfo


def _counter_chunk(start: int, n: int, n_ch: int = 2) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(start, start + n)
    return idx * 0.01, np.repeat(idx[:, None], n_ch, axis=1).astype(np.float64)


def test_reader_gets_everything_in_order_across_wraps():
    buf = RingBuffer(10, 2, dtype=np.float64)
    reader = buf.reader()
    got = []
    for start in range(0, 100, 7):
        buf.write(*_counter_chunk(start, 7))
        res = reader.read()
        assert res.missed == 0
        got.append(res.samples[:, 0])
    values = np.concatenate(got)
    np.testing.assert_array_equal(values, np.arange(values.size))


def test_slow_reader_is_told_what_it_missed():
    buf = RingBuffer(10, 2, dtype=np.float64)
    slow, fast = buf.reader(), buf.reader()
    buf.write(*_counter_chunk(0, 25))
    res = slow.read()
    # Only the newest 10 of 25 are still there: 15 missed, and the ones kept are the newest.
    assert res.missed == 15
    np.testing.assert_array_equal(res.samples[:, 0], np.arange(15, 25))
    assert fast.read().missed == 15  # readers are independent but both fell behind
    buf.write(*_counter_chunk(25, 3))
    res = slow.read()
    assert res.missed == 0 and list(res.samples[:, 0]) == [25, 26, 27]


def test_latest_and_max_samples():
    buf = RingBuffer(8, 1, dtype=np.float64)
    buf.write(*_counter_chunk(0, 5, 1))
    ts, x = buf.latest(3)
    assert list(x[:, 0]) == [2, 3, 4]
    r = buf.reader(from_oldest=True)
    assert list(r.read(max_samples=2).samples[:, 0]) == [0, 1]
    assert list(r.read().samples[:, 0]) == [2, 3, 4]


def test_concurrent_producer_never_waits_and_reader_sees_consistent_data():
    """A producer thread writes a counter as fast as it can while a deliberately slow
    reader copies: every sample the reader gets is a genuine, in-order counter value,
    and read + missed accounts for every sample written."""
    buf = RingBuffer(64, 4, dtype=np.float64)
    reader = buf.reader()
    n_total = 200_000
    done = threading.Event()

    def produce():
        for start in range(0, n_total, 50):
            buf.write(*_counter_chunk(start, 50, 4))
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    got, missed = [], 0
    while not (done.is_set() and reader.available == 0):
        res = reader.read()
        missed += res.missed
        if len(res):
            # all channels of a sample agree, so no torn sample was returned
            assert np.all(res.samples == res.samples[:, :1])
            got.append(res.samples[:, 0])
        time.sleep(0.0005)
    t.join()
    values = np.concatenate(got)
    assert np.all(np.diff(values) > 0), "samples out of order"
    assert values.size + missed == n_total
    assert missed > 0  # the reader really was slower than the producer


def test_hub_counts_device_drops_and_rejects_unknown_streams():
    info = StreamInfo.from_labels("x", "EEG", ["a", "b"], 100.0, "microvolts")
    hub = StreamHub([info], seconds=1.0)
    assert hub.buffers["x"].capacity == 100
    r = hub.reader("x")
    hub.push(Chunk("x", np.arange(5) / 100, np.zeros((5, 2)), dropped=3))
    assert hub.device_dropped["x"] == 3 and len(r.read()) == 5
    with pytest.raises(KeyError, match="unknown stream 'y'"):
        hub.push(Chunk("y", np.zeros(1), np.zeros((1, 2))))


def test_streaminfo_roundtrip_and_validation():
    info = StreamInfo.from_labels("eeg", "EEG", ["Fp1", "Fp2"], 256.0, "microvolts",
                                  device={"model": "m"})
    back = StreamInfo.from_dict(info.to_dict())
    assert back == info and back.labels == ["Fp1", "Fp2"] and back.units == ["microvolts"] * 2
    with pytest.raises(ValueError, match="nominal_srate"):
        StreamInfo.from_labels("bad", "EEG", ["a"], -1.0, "uV")
    with pytest.raises(ValueError, match="2 labels but 1 units"):
        StreamInfo.from_labels("bad", "EEG", ["a", "b"], 1.0, ["uV"])
    with pytest.raises(ValueError, match="3 samples but 2 timestamps"):
        Chunk("eeg", np.zeros(2), np.zeros((3, 2)))
