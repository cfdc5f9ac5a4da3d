"""Device profiles: which BrainFlow rows are which stream, label and unit.

BrainFlow's getters are ambiguous (on many boards the EEG, ECG, EMG and EOG
rows are the same rows), so a TOML profile per board under ``devices/`` says
what each row is. Example::

    board = "CYTON_BOARD"
    aliases = ["cyton"]
    manufacturer = "OpenBCI"
    model = "Cyton"

    [[streams]]
    name = "EEG"
    type = "EEG"
    preset = "default"        # default | auxiliary | ancillary
    rows = [1, 2, 3, 4, 5, 6, 7, 8]
    labels = ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]
    unit = "microvolts"
"""

from __future__ import annotations

import functools
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from physioaffect.errors import PhysioAffectError

PRESETS = ("default", "auxiliary", "ancillary")
#: Larger files are refused unread (a profile is a few hundred bytes).
MAX_PROFILE_BYTES = 1 << 20


class ProfileError(PhysioAffectError, ValueError):
    """A device profile is malformed or does not fit its board."""


@dataclass(frozen=True)
class StreamProfile:
    """One stream of a board: rows of one preset with labels, type and unit."""

    name: str
    type: str
    rows: tuple[int, ...]
    labels: tuple[str, ...]
    unit: str
    preset: str = "default"
    scale: float = 1.0  # multiply BrainFlow's values by this to get `unit`


@dataclass(frozen=True)
class DeviceProfile:
    """A board's profile (see the module docstring for the file format)."""

    key: str
    board: str
    aliases: tuple[str, ...]
    manufacturer: str
    model: str
    description: str
    streams: tuple[StreamProfile, ...]
    config: tuple[str, ...] = field(default=())  # config_board() commands sent before streaming
    path: str = ""

    @property
    def presets(self) -> list[str]:
        return sorted({s.preset for s in self.streams}, key=PRESETS.index)


def _profiles_folder():
    return resources.files("physioaffect._devices")


def load_profile_file(path: str | Path) -> DeviceProfile:
    """Read and check one profile file; errors name the file and the field."""
    path = Path(str(path))
    try:
        data = path.read_bytes()
        if len(data) > MAX_PROFILE_BYTES:
            raise ProfileError(f"device profile {path}: {len(data)} bytes; a profile is at most "
                               f"{MAX_PROFILE_BYTES} bytes")
        spec = tomllib.loads(data.decode("utf-8"))
    except OSError as err:
        raise ProfileError(f"device profile {path}: cannot read ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ProfileError(f"device profile {path}: not UTF-8 text (byte {err.start}); a "
                           f"profile is a UTF-8 TOML file") from None
    except tomllib.TOMLDecodeError as err:
        raise ProfileError(f"device profile {path}: not valid TOML ({err})") from None
    for key in ("board", "streams"):
        if key not in spec:
            raise ProfileError(f"device profile {path}: missing field '{key}'")
    for key, kind in (("board", str), ("aliases", list), ("config", list),
                      ("manufacturer", str), ("model", str), ("description", str)):
        if key in spec and not isinstance(spec[key], kind):
            raise ProfileError(f"device profile {path}: field '{key}' must be "
                               f"{'text' if kind is str else 'a list'}, got {spec[key]!r}"[:300])
    if not isinstance(spec["streams"], list) or not all(isinstance(s, dict)
                                                        for s in spec["streams"]):
        raise ProfileError(f"device profile {path}: 'streams' must be a list of tables "
                           f"([[streams]])")
    streams = []
    for i, s in enumerate(spec["streams"]):
        where = f"device profile {path}: streams[{i}]"
        for key in ("name", "type", "rows", "unit"):
            if key not in s:
                raise ProfileError(f"{where}: missing field '{key}'")
        raw_rows = s["rows"]
        if not isinstance(raw_rows, list) or not raw_rows or not all(
                isinstance(r, int) and not isinstance(r, bool) and 0 <= r < 1024
                for r in raw_rows):
            raise ProfileError(f"{where}: field 'rows' must be a list of row numbers (whole "
                               f"numbers 0-1023), got {raw_rows!r}"[:300])
        rows = tuple(raw_rows)
        raw_labels = s.get("labels", [f"{s['name']}{k + 1}" for k in range(len(rows))])
        if not isinstance(raw_labels, list):
            raise ProfileError(f"{where}: field 'labels' must be a list of names")
        labels = tuple(str(x) for x in raw_labels)
        if len(labels) != len(rows):
            raise ProfileError(f"{where}: {len(rows)} rows but {len(labels)} labels")
        preset = s.get("preset", "default")
        if preset not in PRESETS:
            raise ProfileError(f"{where}: preset {preset!r} is not one of {', '.join(PRESETS)}")
        scale = s.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
                or not math.isfinite(scale):
            raise ProfileError(f"{where}: field 'scale' must be a finite number, got {scale!r}")
        streams.append(
            StreamProfile(name=str(s["name"]), type=str(s["type"]), rows=rows, labels=labels,
                          unit=str(s["unit"]), preset=preset, scale=float(scale))
        )
    names = [s.name for s in streams]
    if len(set(names)) != len(names):
        raise ProfileError(f"device profile {path}: stream names repeat: {names}")
    return DeviceProfile(
        key=path.stem,
        board=str(spec["board"]),
        aliases=tuple(str(a).lower() for a in spec.get("aliases", [])),
        manufacturer=str(spec.get("manufacturer", "")),
        model=str(spec.get("model", spec["board"])),
        description=str(spec.get("description", "")),
        streams=tuple(streams),
        config=tuple(str(c) for c in spec.get("config", [])),
        path=str(path),
    )


@functools.lru_cache(maxsize=1)
def shipped_profiles() -> dict[str, DeviceProfile]:
    """Profiles shipped in ``devices/``, keyed by file stem."""
    out = {}
    for entry in sorted(_profiles_folder().iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            prof = load_profile_file(Path(str(entry)))
            out[prof.key] = prof
    return out


def find_profile(board: str) -> DeviceProfile | None:
    """The shipped profile for a board name, alias, BoardIds name or numeric id."""
    wanted = board.strip().lower()
    for prof in shipped_profiles().values():
        if wanted in (prof.key.lower(), prof.board.lower(), *prof.aliases):
            return prof
    return None
