"""Electrode sets: channel order, 3-D positions and left/right symmetric pairs.

The sets live as TOML files in the top-level ``montages/`` folder (installed as
``physioaffect._montages``). Positions come from MNE's template 10-05 montage,
so every set places its electrodes the same way MNE does.
"""

from __future__ import annotations

import functools
import tomllib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np

from physioaffect.errors import PhysioAffectError


class MontageError(PhysioAffectError, ValueError):
    """A montage name or file is wrong; the message says which and why."""


@dataclass(frozen=True)
class Montage:
    """An electrode set.

    Attributes
    ----------
    name : str
        Key of the set, e.g. ``"deap32"``.
    ch_names : list of str
        Channel labels in the order the data uses.
    positions : ndarray, shape (n_channels, 3)
        Head-frame positions in metres (MNE convention).
    pairs : list of (str, str)
        Left/right symmetric pairs, left first (for asymmetry, DASM, RASM).
    description : str
    """

    name: str
    ch_names: list[str]
    positions: np.ndarray
    pairs: list[tuple[str, str]]
    description: str = ""

    def __len__(self) -> int:
        return len(self.ch_names)

    def index(self, label: str) -> int:
        """Index of a channel, matched case-insensitively (SEED writes ``FP1``)."""
        low = [c.lower() for c in self.ch_names]
        try:
            return low.index(label.lower())
        except ValueError:
            raise MontageError(f"montage {self.name!r} has no channel {label!r}") from None

    def pair_indices(self) -> np.ndarray:
        """``(n_pairs, 2)`` array of (left, right) channel indices."""
        return np.array([[self.index(a), self.index(b)] for a, b in self.pairs], dtype=int).reshape(
            -1, 2
        )

    def subset(self, n: int) -> Montage:
        """The first ``n`` channels (pairs kept only where both sides remain)."""
        if n > len(self.ch_names):
            raise MontageError(f"montage {self.name!r} has {len(self.ch_names)} channels, asked {n}")
        keep = set(c.lower() for c in self.ch_names[:n])
        pairs = [(a, b) for a, b in self.pairs if a.lower() in keep and b.lower() in keep]
        return Montage(
            name=f"{self.name}[:{n}]",
            ch_names=list(self.ch_names[:n]),
            positions=self.positions[:n].copy(),
            pairs=pairs,
            description=f"first {n} channels of {self.name}",
        )

    def to_mne(self):
        """The set as an ``mne.channels.DigMontage`` (metres, the template's frame + fiducials).

        ``info.set_montage`` moves it to MNE's head frame through the fiducials, exactly as
        MNE's own template montages (declaring template coordinates "head" would shift every
        electrode by several centimetres).
        """
        import mne

        fid, frame = _template_fiducials()
        return mne.channels.make_dig_montage(
            ch_pos={c: p for c, p in zip(self.ch_names, self.positions, strict=True)},
            coord_frame=frame, **fid,
        )


def available_montages() -> list[str]:
    """Names of the shipped electrode sets."""
    folder = resources.files("physioaffect._montages")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


@functools.lru_cache(maxsize=1)
def _template_positions() -> dict[str, np.ndarray]:
    import mne

    names = mne.channels.get_builtin_montages()
    # MNE 1.13 renames standard_1005 to colin27_1005; both are the same template.
    key = "colin27_1005" if "colin27_1005" in names else "standard_1005"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mont = mne.channels.make_standard_montage(key)
    return {k.lower(): np.asarray(v, dtype=float) for k, v in mont.get_positions()["ch_pos"].items()}


@functools.cache
def load_montage(name: str) -> Montage:
    """Load a shipped electrode set by name (see :func:`available_montages`)."""
    path = resources.files("physioaffect._montages") / f"{name}.toml"
    if not path.is_file():
        raise MontageError(
            f"unknown montage {name!r}; available: {', '.join(available_montages())}"
        )
    try:
        spec = tomllib.loads(path.read_text())
        channels = [str(c) for c in spec["channels"]]
        pairs = [(str(a), str(b)) for a, b in spec.get("pairs", [])]
    except (tomllib.TOMLDecodeError, KeyError, ValueError, TypeError) as err:
        raise MontageError(f"montage file {path}: {err}; expected 'channels' and 'pairs'") from err
    aliases = {k.lower(): v.lower() for k, v in spec.get("aliases", {}).items()}
    template = _template_positions()
    pos = []
    for ch in channels:
        key = aliases.get(ch.lower(), ch.lower())
        if key not in template:
            raise MontageError(
                f"montage file {path}: channel {ch!r} has no template position; add an alias"
            )
        pos.append(template[key])
    known = {c.lower() for c in channels}
    for a, b in pairs:
        if a.lower() not in known or b.lower() not in known:
            raise MontageError(f"montage file {path}: pair ({a}, {b}) names a channel not in the set")
    return Montage(
        name=spec.get("name", name),
        ch_names=channels,
        positions=np.array(pos),
        pairs=pairs,
        description=spec.get("description", ""),
    )


_CORE_1020 = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8",
              "P7", "P3", "Pz", "P4", "P8", "O1", "O2"]


def _spread_order(mont: Montage) -> list[int]:
    """Channel order for taking the first n of a dense set: the 10-20 core first, then
    the remaining sites with each left site followed by its right mirror."""
    low = [c.lower() for c in mont.ch_names]
    order = [low.index(c.lower()) for c in _CORE_1020 if c.lower() in low]
    right_of = {a.lower(): b.lower() for a, b in mont.pairs}
    for i, c in enumerate(low):
        if i in order:
            continue
        if c in right_of.values():
            continue  # placed right after its left partner
        order.append(i)
        partner = right_of.get(c)
        if partner is not None and low.index(partner) not in order:
            order.append(low.index(partner))
    return order


def montage_for_channels(n_channels: int) -> Montage:
    """The natural set for a channel count (DEAP 32, SEED 62, DREAMER 14, OpenBCI 8/16,
    BioSemi 64), else the first ``n_channels`` of BioSemi 64."""
    by_count = {14: "dreamer14", 32: "deap32", 62: "seed62", 8: "openbci8", 16: "openbci16",
                64: "biosemi64"}
    if n_channels in by_count:
        return load_montage(by_count[n_channels])
    if 1 <= n_channels < 64:
        full = load_montage("biosemi64")
        order = _spread_order(full)
        mont = Montage(
            name="biosemi64", ch_names=[full.ch_names[i] for i in order],
            positions=full.positions[order], pairs=full.pairs, description=full.description,
        )
        return mont.subset(n_channels)
    raise MontageError(
        f"no electrode set with {n_channels} channels; use 1-64 or a montage file"
    )


@functools.cache
def _shipped_aliases() -> dict[str, str]:
    """Label -> template site of every shipped set's ``[aliases]`` (lower case)."""
    out: dict[str, str] = {}
    for name in available_montages():
        path = resources.files("physioaffect._montages") / f"{name}.toml"
        try:
            spec = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError:
            continue
        out.update({str(k).lower(): str(v).lower() for k, v in spec.get("aliases", {}).items()})
    return out


def template_positions(ch_names: Sequence[str], montage: str | None = None) -> dict[str, np.ndarray]:
    """Head-frame positions (metres) of the channels whose labels a template knows.

    Parameters
    ----------
    ch_names : list of str
        Channel labels, matched case-insensitively (SEED writes ``FP1``); labels a shipped set
        aliases (SEED's ``CB1`` -> ``I1``) are placed at that site.
    montage : str, optional
        Name of a shipped set (a stream's ``device["montage"]``): its positions win for its
        channels.

    Returns
    -------
    dict
        Label (as given) -> position ``(3,)``; labels without a known position are absent.
    """
    template = _template_positions()
    aliases = _shipped_aliases()
    own: dict[str, np.ndarray] = {}
    if montage:
        try:
            m = load_montage(montage)
            own = {c.lower(): p for c, p in zip(m.ch_names, m.positions, strict=True)}
        except MontageError:
            own = {}
    out = {}
    for ch in ch_names:
        key = ch.strip().lower()
        pos = own.get(key)
        if pos is None:
            pos = template.get(key, template.get(aliases.get(key, ""), None))
        if pos is not None:
            out[ch] = np.asarray(pos, dtype=float)
    return out


def dig_montage(ch_names: Sequence[str], montage: str | None = None):
    """An ``mne.channels.DigMontage`` of the known channels plus the template's fiducials.

    ``raw.set_montage(dig_montage(raw.ch_names), on_missing="ignore")`` places every channel
    whose label the 10-05 template (or ``montage``) knows; returns None when none is known.
    """
    import mne

    pos = template_positions(ch_names, montage)
    if not pos:
        return None
    fid, frame = _template_fiducials()
    # The template's coordinates are not MNE's head frame; with the fiducials in the same
    # frame, set_montage moves them to the head frame exactly as for MNE's own montages.
    return mne.channels.make_dig_montage(ch_pos=pos, coord_frame=frame, **fid)


@functools.lru_cache(maxsize=1)
def _template_fiducials() -> tuple[dict[str, np.ndarray], str]:
    import mne

    names = mne.channels.get_builtin_montages()
    key = "colin27_1005" if "colin27_1005" in names else "standard_1005"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        p = mne.channels.make_standard_montage(key).get_positions()
    fid = {k: np.asarray(p[k], dtype=float) for k in ("nasion", "lpa", "rpa") if p.get(k) is not None}
    return fid, str(p["coord_frame"])
