"""Markers from outside the sources: ``physioaffect mark TEXT`` and the keyboard.

``physioaffect mark`` talks to a running recorder over UDP on the loopback interface
(default port :data:`DEFAULT_MARK_PORT`). UDP on 127.0.0.1 needs no discovery (an LSL
outlet that lives for a fraction of a second can be missed by a resolver) and the
recorder acknowledges every marker, so ``mark`` can say whether one was recorded.

Datagram (UTF-8 JSON, one per marker)::

    {"text": "stimulus-onset", "time": 1234.5678}   # time: LSL clock of the sender (s)

Reply: ``{"ok": true, "stream": "physioaffect-markers"}``. The LSL clock is shared by every
program on one host, so the sender's stamp is used as the marker time.
"""

from __future__ import annotations

import json
import math
import os
import select
import socket
import struct
import sys
import threading
from collections.abc import Callable, Mapping

from physioaffect.recording.errors import RecordingError
from physioaffect.streams import local_clock

#: UDP port the recorder listens on for ``physioaffect mark`` (override: env
#: ``PHYSIOAFFECT_MARK_PORT`` or ``--mark-port``).
DEFAULT_MARK_PORT = int(os.environ.get("PHYSIOAFFECT_MARK_PORT", "16571"))
_MAX_TEXT = 4096
#: Largest datagram read; longer ones arrive truncated and are refused as invalid JSON.
_MAX_DATAGRAM = 3 * _MAX_TEXT + 256
#: A marker time further than this from the recorder's LSL clock (s) is refused: the LSL
#: clock is shared by every program on the host, so such a time is a sender's mistake.
MAX_MARK_SKEW = 24 * 3600.0
_EXPECTED = 'expected JSON {"text": "...", "time": <LSL seconds>}'

MarkerCallback = Callable[[str, float, str], None]
#: Receive buffer asked of the kernel (bytes): a burst of several thousand markers waits
#: there while the listener takes them (Linux caps it at net.core.rmem_max unless the
#: process may raise it, e.g. as root).
RECEIVE_BUFFER = 16 << 20
# Linux socket options: SO_RCVBUFFORCE (33) exceeds rmem_max with CAP_NET_ADMIN;
# SO_RXQ_OVFL (40) attaches the socket's count of datagrams dropped for a full buffer
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)


class MarkerListener:
    """Receives ``physioaffect mark`` datagrams and hands them to ``callback(text, time, origin)``.

    The socket's receive buffer is made as large as the system allows
    (:data:`RECEIVE_BUFFER`), and on Linux the datagrams the kernel still had to drop (a
    burst faster than the listener) are counted: ``on_dropped(new, total)`` is called when
    the count grows (:attr:`dropped` holds the total).

    Parameters
    ----------
    callback : callable
        ``callback(text, lsl_time, origin)`` for every valid marker.
    port : int
        UDP port on ``host`` (0: a free one, see :attr:`port`).
    on_dropped : callable, optional
        ``on_dropped(new_drops, total_drops)``.
    receive_buffer : int
        Bytes asked for the socket's receive buffer.
    """

    def __init__(self, callback: MarkerCallback, port: int = DEFAULT_MARK_PORT,
                 host: str = "127.0.0.1", on_dropped: Callable[[int, int], None] | None = None,
                 receive_buffer: int = RECEIVE_BUFFER):
        self.callback = callback
        self.on_dropped = on_dropped
        self.dropped = 0
        self.port = check_port(port, "--mark-port")
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._set_buffer(receive_buffer)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, _SO_RXQ_OVFL, 1)
            self._count_drops = hasattr(self._sock, "recvmsg")
        except OSError:  # not Linux: drops cannot be counted
            self._count_drops = False
        try:
            self._sock.bind((host, port))
        except OSError as err:
            self._sock.close()
            raise RecordingError(
                f"cannot listen for `physioaffect mark` on {host}:{port} ({err.strerror}); "
                f"another recorder is probably running: choose another --mark-port"
            ) from None
        self.port = self._sock.getsockname()[1]
        self._host = host
        self._sock.settimeout(1.0)  # stop() wakes it at once with a datagram of its own
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mark-listener", daemon=True)

    def _set_buffer(self, size: int) -> None:
        for option in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):  # beyond rmem_max where allowed
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, option, int(size))
            except OSError:
                continue
            if self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= size:
                return

    @property
    def receive_buffer(self) -> int:
        """Bytes of the socket's receive buffer (as the kernel accounts them)."""
        return self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    def start(self) -> MarkerListener:
        self._thread.start()
        return self

    def _receive(self) -> tuple[bytes, object]:
        """One datagram and its sender; notes the kernel's drop count that comes with it."""
        if not self._count_drops:
            return self._sock.recvfrom(_MAX_DATAGRAM)
        data, ancdata, _flags, addr = self._sock.recvmsg(_MAX_DATAGRAM, socket.CMSG_SPACE(4))
        for level, kind, value in ancdata:
            if level == socket.SOL_SOCKET and kind == _SO_RXQ_OVFL and len(value) >= 4:
                total = struct.unpack("=I", value[:4])[0]
                if total > self.dropped:
                    new, self.dropped = total - self.dropped, total
                    if self.on_dropped is not None:
                        try:
                            self.on_dropped(new, total)
                        except Exception:  # noqa: BLE001 - counting must not end the listener
                            pass
        return data, addr

    def _run(self) -> None:
        while True:
            try:
                data, addr = self._receive()
            except TimeoutError:
                if self._stop.is_set():
                    return
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue  # e.g. an ICMP error from an earlier reply: keep listening
            if self._stop.is_set() and not data:
                return  # stop()'s own datagram: every marker queued before it is taken
            try:
                text, t = parse_mark(data)
                self.callback(text, t, "mark")
                reply = {"ok": True}
            except RecordingError as err:
                reply = {"ok": False, "error": str(err)}
            except Exception as err:  # noqa: BLE001 - no datagram may end the listener
                reply = {"ok": False, "error": f"marker not recorded ({type(err).__name__})"}
            try:
                self._sock.sendto(json.dumps(reply).encode(), addr)
            except OSError:
                pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as wake:
                    wake.sendto(b"", (self._host, self.port))
            except OSError:
                pass
            self._thread.join(timeout=5.0)  # a burst still queued is taken first
        self._sock.close()


def check_port(port: int, option: str = "port") -> int:
    """``port`` if it is a UDP port number (0-65535; 0 lets the system pick), else raise."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise RecordingError(f"{option} {port!r} is not a UDP port: expected 0-65535 "
                             f"(0 picks a free one)")
    return port


def parse_mark(data: bytes, now: float | None = None) -> tuple[str, float]:
    """Text and LSL time of one ``mark`` datagram, or :class:`RecordingError` saying why not.

    ``time`` is optional (default: now); it must be a finite number within
    :data:`MAX_MARK_SKEW` seconds of the recorder's LSL clock.
    """
    try:
        msg = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RecordingError(f"datagram is not UTF-8; {_EXPECTED}") from None
    except RecursionError:
        raise RecordingError(f"datagram nests too deeply; {_EXPECTED}") from None
    except ValueError:  # JSONDecodeError, and integers too long to convert
        raise RecordingError(f"datagram is not valid JSON; {_EXPECTED}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("text"), str):
        raise RecordingError(f"no \"text\" string in the datagram; {_EXPECTED}")
    text = msg["text"]
    if len(text) > _MAX_TEXT:
        raise RecordingError(f"marker text is {len(text)} characters; at most {_MAX_TEXT}")
    now = local_clock() if now is None else now
    if msg.get("time") is None:
        return text, now
    t = msg["time"]
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise RecordingError(f"\"time\" must be a number (LSL seconds), got {type(t).__name__}")
    try:
        t = float(t)
    except OverflowError:
        t = math.inf
    if not math.isfinite(t) or abs(t - now) > MAX_MARK_SKEW:
        raise RecordingError(
            f"\"time\" {t!r} is not within {MAX_MARK_SKEW / 3600:g} h of the recorder's LSL "
            f"clock ({now:.3f} s); send local_clock() of the same machine"
        )
    return text, t


def send_mark(text: str, port: int = DEFAULT_MARK_PORT, timeout: float = 1.0,
              host: str = "127.0.0.1") -> float:
    """Send a marker to a running recorder; returns its LSL time.

    Raises
    ------
    RecordingError
        Nobody acknowledged the marker within ``timeout`` seconds.
    """
    if not text:
        raise RecordingError("a marker needs a text")
    if len(text) > _MAX_TEXT:
        raise RecordingError(f"marker text is {len(text)} characters; at most {_MAX_TEXT}")
    check_port(port, "--port")
    t = local_clock()
    msg = json.dumps({"text": text, "time": t}).encode("utf-8")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(msg, (host, port))
            data, _ = sock.recvfrom(4096)
        except (TimeoutError, ConnectionRefusedError, OSError):
            raise RecordingError(
                f"no recorder answered on {host}:{port} (is `physioaffect record` running, "
                f"with the same --mark-port?)"
            ) from None
    try:
        reply = json.loads(data.decode("utf-8"))
        if not isinstance(reply, dict):
            raise ValueError
    except ValueError:
        raise RecordingError(f"something other than a recorder answered on {host}:{port}") from None
    if not reply.get("ok"):
        raise RecordingError(f"the recorder refused the marker: {reply.get('error')}")
    return t


def parse_marker_keys(text: str | None) -> dict[str, str]:
    """``"1=baseline,2=stimulus"`` -> ``{"1": "baseline", "2": "stimulus"}``.

    ``None`` gives the default: keys 1-9 send ``key-1`` ... ``key-9``.
    """
    if text is None:
        return {str(d): f"key-{d}" for d in range(1, 10)}
    out: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, label = part.partition("=")
        if not sep or len(key) != 1 or not label.strip():
            raise RecordingError(
                f"invalid --marker-keys entry {part!r}: expected KEY=TEXT with a one-character "
                f"key, e.g. '1=baseline,2=stimulus'"
            )
        if key in "q\x03":
            raise RecordingError(f"invalid --marker-keys entry {part!r}: key {key!r} is reserved")
        out[key] = label.strip()
    return out


class KeyboardMarkers:
    """Reads single key presses from a terminal (cbreak mode) and maps them to markers.

    Does nothing when stdin is not a terminal. Ctrl-C still interrupts (cbreak keeps
    signals); the terminal is restored by :meth:`stop`.
    """

    def __init__(self, mapping: Mapping[str, str], callback: MarkerCallback):
        self.mapping = dict(mapping)
        self.callback = callback
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved = None
        self.active = False

    def start(self) -> KeyboardMarkers:
        if not self.mapping or not sys.stdin.isatty():
            return self
        import termios
        import tty

        fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self.active = True
        self._thread = threading.Thread(target=self._run, args=(fd,), name="key-markers",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self, fd: int) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            t = local_clock()
            ch = os.read(fd, 1).decode("utf-8", "replace")
            if ch in self.mapping:
                self.callback(self.mapping[ch], t, "keyboard")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self._saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None
