"""Progress bars: on a terminal only."""
from __future__ import annotations

from typing import Any

from tqdm import tqdm


def progress_bar(total: int, desc: str, show: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr when `show` and stderr is a terminal; a silent one otherwise: in a log
    file or a CI log every redraw becomes a line (and each cleared bar a blank line)."""
    return tqdm(total=total, desc=desc, disable=None if show else True, **kwargs)
