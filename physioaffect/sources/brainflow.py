"""The ``brainflow:<board>`` source: any BrainFlow board through its device profile.

BrainFlow stamps samples in UNIX seconds on the host; they are mapped onto the
LSL clock with an offset measured at start (kept in :attr:`clock_offset`).
Package-counter gaps (the counter wraps at 256) are counted as dropped samples.
The board's own ring buffer is sized for a minute and drained at every read,
so it cannot overwrite samples as long as something reads (the pump does).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from physioaffect.log import logger as log
from physioaffect.sources.base import Source, SourceError, SourceSpec, SourceSpecError
from physioaffect.sources.profiles import (
    PRESETS,
    DeviceProfile,
    ProfileError,
    find_profile,
    load_profile_file,
    shipped_profiles,
)
from physioaffect.streams import IRREGULAR_RATE, Chunk, StreamInfo, unix_to_lsl_offset

#: BrainFlowInputParams fields settable as ``brainflow:board?field=value``.
INPUT_PARAMS = {
    "serial_port", "mac_address", "ip_address", "ip_address_aux", "ip_address_anc", "ip_port",
    "ip_port_aux", "ip_port_anc", "ip_protocol", "other_info", "timeout", "serial_number",
    "file", "file_aux", "file_anc", "master_board",
}
_INT_PARAMS = {"ip_port", "ip_port_aux", "ip_port_anc", "ip_protocol", "timeout"}


def _brainflow():
    import warnings

    with warnings.catch_warnings():  # BoardShim() imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        from brainflow import board_shim

        try:
            import pkg_resources  # noqa: F401  (imported here once, quietly)
        except ImportError:
            pass
    return board_shim


def board_id_of(name: str) -> int:
    """BrainFlow board id from a profile alias, a ``BoardIds`` name or a number."""
    bs = _brainflow()
    prof = find_profile(name)
    if prof is not None:
        return int(bs.BoardIds[prof.board].value)
    key = name.strip().upper().replace("-", "_")
    for candidate in (key, f"{key}_BOARD"):
        if candidate in bs.BoardIds.__members__:
            return int(bs.BoardIds[candidate].value)
    try:
        value = int(name)
        bs.BoardIds(value)
        return value
    except ValueError:
        pass
    known = ", ".join(sorted({a for p in shipped_profiles().values() for a in p.aliases[:1]}))
    raise SourceError(
        f"unknown BrainFlow board {name!r}; profiles: {known}; or any BoardIds name "
        f"(run 'physioaffect devices')"
    )


def _preset_enum(preset: str):
    bs = _brainflow()
    return {
        "default": bs.BrainFlowPresets.DEFAULT_PRESET,
        "auxiliary": bs.BrainFlowPresets.AUXILIARY_PRESET,
        "ancillary": bs.BrainFlowPresets.ANCILLARY_PRESET,
    }[preset]


def board_description(board_id: int, preset: str = "default") -> dict:
    """BrainFlow's description of a board preset (rows, rate, names); ``{}`` if it has none."""
    bs = _brainflow()
    try:
        return dict(bs.BoardShim.get_board_descr(board_id, _preset_enum(preset)))
    except bs.BrainFlowError:
        return {}


def check_profile(profile: DeviceProfile, board_id: int) -> dict[str, dict]:
    """Check that every row of the profile exists on the board; return the descriptions
    per preset. Raises :class:`ProfileError` naming the stream and the row."""
    descs = {}
    for preset in profile.presets:
        desc = board_description(board_id, preset)
        if not desc or "num_rows" not in desc:
            raise ProfileError(
                f"device profile {profile.path}: board {profile.board} has no {preset} preset"
            )
        descs[preset] = desc
    for s in profile.streams:
        desc = descs[s.preset]
        reserved = {desc.get("timestamp_channel"), desc.get("marker_channel")}
        for row in s.rows:
            if not 0 <= row < desc["num_rows"] or row in reserved:
                raise ProfileError(
                    f"device profile {profile.path}: stream {s.name!r} names row {row}, but board "
                    f"{profile.board} ({s.preset} preset) has data rows 0-{desc['num_rows'] - 1} "
                    f"(timestamp row {desc.get('timestamp_channel')}, marker row "
                    f"{desc.get('marker_channel')})"
                )
    return descs


class BrainFlowSource(Source):
    """Streams a BrainFlow board, one stream per profile entry plus a Markers stream.

    Parameters
    ----------
    board : str
        Profile alias (``synthetic``, ``cyton``, ...), ``BoardIds`` name or id.
    params : dict
        BrainFlowInputParams fields (``serial_port``, ``mac_address``, ``ip_address``, ...).
    profile : str or Path, optional
        A profile file to use instead of the shipped one.
    prefix : str, optional
        Stream-name prefix (default: the profile key).
    buffer_seconds : float
        Size of BrainFlow's ring buffer, in seconds of the fastest preset.
    """

    def __init__(
        self, board: str, params: dict[str, str] | None = None, profile: str | Path | None = None,
        prefix: str | None = None, buffer_seconds: float = 60.0,
    ):
        super().__init__()
        self.board_name = board
        self.params = dict(params or {})
        self.board_id = board_id_of(board)
        bs = _brainflow()
        master = self.params.get("master_board")
        self.master_id = board_id_of(master) if master else None
        data_board = self.master_id if self.board_id == int(bs.BoardIds.PLAYBACK_FILE_BOARD) else self.board_id
        if data_board is None:
            raise SourceError("brainflow:playback needs master_board=<board> and file=<path>")
        if profile is not None:
            self.profile = load_profile_file(profile)
        else:
            name = bs.BoardIds(data_board).name
            self.profile = find_profile(name)
            if self.profile is None:
                raise SourceError(
                    f"no device profile for BrainFlow board {name}; write one (see devices/) "
                    f"and pass it as ?profile=PATH"
                )
        try:
            self._descs = check_profile(self.profile, data_board)
        except ProfileError as err:
            raise SourceError(str(err)) from None
        self.prefix = prefix or self.profile.key
        if not (math.isfinite(buffer_seconds) and 1 <= buffer_seconds <= 3600):  # NaN too
            raise SourceSpecError(f"brainflow:{board}: buffer must be 1-3600 s of samples, got "
                                  f"{buffer_seconds!r}")
        self.buffer_seconds = buffer_seconds
        self.description = f"brainflow:{board}"
        self.clock_offset = 0.0  # lsl = unix + offset
        dev = {"manufacturer": self.profile.manufacturer, "model": self.profile.model,
               "board_id": str(self.board_id), "serial": self.params.get("serial_number", ""),
               "connection": ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))}
        sid = f"brainflow-{self.profile.key}-{self.params.get('serial_number') or self.params.get('serial_port') or self.params.get('mac_address') or 'default'}"
        self._infos: list[tuple[StreamInfo, object]] = []
        for s in self.profile.streams:
            rate = float(self._descs[s.preset]["sampling_rate"])
            info = StreamInfo.from_labels(
                f"{self.prefix}-{s.name}", s.type, list(s.labels), rate, s.unit,
                source_id=f"{sid}-{s.name}", device=dev,
            )
            self._infos.append((info, s))
        self._marker_info = StreamInfo.from_labels(
            f"{self.prefix}-Markers", "Markers", ["Marker"], IRREGULAR_RATE, "",
            channel_format="string", source_id=f"{sid}-markers", device=dev,
        )
        self.streams = [i for i, _ in self._infos] + [self._marker_info]
        self.dropped = {info.name: 0 for info in self.streams}

    @classmethod
    def from_spec(cls, spec: SourceSpec) -> BrainFlowSource:
        if not spec.target:
            raise SourceSpecError("brainflow source needs a board: brainflow:synthetic, brainflow:cyton?serial_port=...")
        spec.check_known(INPUT_PARAMS | {"profile", "prefix", "buffer"})
        params = {k: v for k, v in spec.params.items() if k in INPUT_PARAMS}
        return cls(spec.target, params, profile=spec.param("profile"), prefix=spec.param("prefix"),
                   buffer_seconds=spec.float_param("buffer", 60.0))

    def _input_params(self):
        bs = _brainflow()
        p = bs.BrainFlowInputParams()
        for key, value in self.params.items():
            if key == "master_board":
                p.master_board = int(self.master_id)
            elif key in _INT_PARAMS:
                try:
                    setattr(p, key, int(value))
                except ValueError:
                    raise SourceError(f"brainflow: {key}={value!r} must be an integer") from None
            else:
                setattr(p, key, value)
        return p

    def _start(self) -> None:
        bs = _brainflow()
        bs.BoardShim.disable_board_logger()
        self._board = bs.BoardShim(self.board_id, self._input_params())
        try:
            self._board.prepare_session()
        except bs.BrainFlowError as err:
            where = self.params.get("serial_port") or self.params.get("mac_address") or self.params.get("ip_address") or "the default connection"
            raise SourceError(
                f"brainflow:{self.board_name}: cannot open the board on {where} "
                f"({err.exit_code.name if hasattr(err, 'exit_code') and hasattr(err.exit_code, 'name') else err})"
            ) from None
        try:
            for command in self.profile.config:
                self._board.config_board(command)
            rate = max(float(d.get("sampling_rate", 250)) for d in self._descs.values())
            self._board.start_stream(int(max(rate * self.buffer_seconds, 1000)))
        except BaseException as err:  # never leave a prepared session behind (it blocks the next)
            self._board.release_session()
            if isinstance(err, bs.BrainFlowError):
                raise SourceError(f"brainflow:{self.board_name}: cannot start streaming "
                                  f"({err})") from None
            raise
        self.clock_offset = unix_to_lsl_offset()
        self._last_package = {p: None for p in self._descs}

    def _drain(self, preset: str) -> np.ndarray:
        return self._board.get_board_data(preset=_preset_enum(preset))

    def _count_dropped(self, preset: str, packages: np.ndarray) -> int:
        """Samples lost, from gaps in the 0-255 package counter."""
        if packages.size == 0:
            return 0
        counter = packages.astype(np.int64)
        prev = self._last_package[preset]
        seq = counter if prev is None else np.concatenate([[prev], counter])
        self._last_package[preset] = int(counter[-1])
        steps = np.diff(seq) % 256
        return int(np.sum(np.maximum(steps - 1, 0)))

    def _read(self, timeout: float) -> list[Chunk]:
        time.sleep(min(timeout, 0.02))
        chunks = []
        marker_ts, marker_vals = [], []
        for preset in self.profile.presets:
            desc = self._descs[preset]
            data = self._drain(preset)
            if data.size == 0 or data.shape[1] == 0:
                continue
            ts = data[desc["timestamp_channel"]] + self.clock_offset
            dropped = 0
            if "package_num_channel" in desc:
                dropped = self._count_dropped(preset, data[desc["package_num_channel"]])
            for info, sprof in self._infos:
                if sprof.preset != preset:
                    continue
                samples = (data[list(sprof.rows)].T * sprof.scale).astype(np.float32)
                self.dropped[info.name] += dropped
                chunks.append(Chunk(info.name, ts, samples, dropped=dropped))
            if "marker_channel" in desc:
                marks = data[desc["marker_channel"]]
                hit = np.nonzero(marks != 0)[0]
                marker_ts += list(ts[hit])
                marker_vals += [f"{m:g}" for m in marks[hit]]
        if marker_ts:
            chunks.append(Chunk(self._marker_info.name, np.array(marker_ts),
                                np.array(marker_vals, dtype=object).reshape(-1, 1)))
        return chunks

    def insert_marker(self, value: float) -> None:
        """Put a numeric marker into the board's marker row (BrainFlow refuses 0)."""
        if value == 0:
            raise SourceSpecError("BrainFlow markers must be non-zero")
        self._board.insert_marker(float(value))

    def _stop(self) -> None:
        bs = _brainflow()
        try:
            if self._board.is_prepared():
                try:
                    self._board.stop_stream()
                except bs.BrainFlowError:
                    pass  # not streaming
        finally:
            try:
                self._board.release_session()
            except bs.BrainFlowError:
                log.debug("release_session failed", exc_info=True)
            self._board = None  # BoardShim.__del__ at interpreter exit would touch a dead numpy


def list_boards() -> list[tuple[str, int]]:
    """All BrainFlow ``BoardIds`` (name, id)."""
    bs = _brainflow()
    return [(b.name, int(b.value)) for b in bs.BoardIds]


def preset_names() -> tuple[str, ...]:
    return PRESETS
