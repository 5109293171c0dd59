"""Progress display for long calls: a tqdm bar per stage (``tqdm.auto``, so notebooks get a
widget and terminals a text bar) when tqdm is installed, plain lines on stderr otherwise.

The Rust side calls the reporter with ``(stage, done, total, info)`` from the calling thread,
about 20 times a second at most.
"""

import sys
import time
from typing import Any, Callable, Optional, Union

ProgressArg = Union[bool, None, Callable[[str, int, int, str], Any]]


class _Bars:
    """One tqdm bar per stage, closed when the next stage starts or the call ends."""

    def __init__(self, tqdm: Any) -> None:
        self._tqdm = tqdm
        self._bar: Any = None
        self._stage = ""

    def __call__(self, stage: str, done: int, total: int, info: str) -> None:
        if stage != self._stage or self._bar is None:
            self.close()
            self._stage = stage
            self._bar = self._tqdm(total=total or None, desc=stage, initial=done, dynamic_ncols=True, leave=True)
        if total and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        if info:
            self._bar.set_postfix_str(info, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _Lines:
    """A line on stderr when a stage starts, every 10 seconds, and at the end of each stage."""

    def __init__(self) -> None:
        self._stage = ""
        self._last = 0.0
        self._state = ("", 0, 0, "")

    def __call__(self, stage: str, done: int, total: int, info: str) -> None:
        now = time.monotonic()
        self._state = (stage, done, total, info)
        if stage != self._stage or now - self._last >= 10 or (total and done >= total):
            self._stage, self._last = stage, now
            self._print()

    def _print(self) -> None:
        stage, done, total, info = self._state
        print(f"{stage}: {done}/{total}" + (f"  {info}" if info else ""), file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def reporter(progress: ProgressArg) -> Optional[Callable[[str, int, int, str], Any]]:
    """The callback for ``progress``: True shows bars (or lines), False or None nothing, and a
    callable ``f(stage, done, total, info)`` is used as it is."""
    if progress is None or progress is False:
        return None
    if callable(progress):
        return progress
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Lines()
    return _Bars(tqdm)


def close(callback: Any) -> None:
    """Closes the bar a reporter holds, if any."""
    if hasattr(callback, "close"):
        callback.close()
