"""Where the slide viewer's deep-zoom view looks, and how each control moves it.

The view is a :class:`ViewState`: a Deep Zoom level and the view centre in percent of the slide's
width and height (what the page's sliders show). Every control is a pure function from one state to
the next, given the slide's :class:`ViewGeometry`, so the rules are tested without Streamlit or a
slide file:

- pan moves the centre by half a view in the chosen direction; the centre stays on the slide (0–100 %);
- zoom steps through the offered levels and keeps the centre where it is;
- "go to the highest-scoring tile" centres that tile at the sharpest zoom at which it still takes at
  most a third of the view's width, so it is seen in its surroundings.

Deep Zoom levels: 0 is 1 x 1 pixel, ``max_level`` is full resolution; each level halves the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mrrp.dashboard.deepzoom import DeepZoomView

# A top tile is shown at most this share of the view's width, so its neighbourhood is visible too.
TILE_SHARE_OF_VIEW = 1 / 3
PAN_DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass(frozen=True)
class ViewState:
    """A Deep Zoom ``level`` and the view centre, ``x_pct`` / ``y_pct`` percent of the slide's width / height."""

    level: int
    x_pct: float = 50.0
    y_pct: float = 50.0


@dataclass(frozen=True)
class ViewGeometry:
    """What navigation needs to know about one slide in a view of ``view_w_px`` x ``view_h_px`` screen pixels."""

    levels: tuple[int, ...]  # the zoom levels offered, whole slide in view first, full resolution last
    level_dimensions: Mapping[int, tuple[int, int]]  # offered level → (width, height) in pixels of that level
    max_level: int  # the full-resolution level (1 pixel = 1 level-0 pixel)
    width_l0: int
    height_l0: int
    view_w_px: int
    view_h_px: int

    @classmethod
    def of(cls, view: DeepZoomView, view_w_px: int, view_h_px: int) -> ViewGeometry:
        levels = tuple(view.zoom_levels(view_w_px, view_h_px))
        return cls(
            levels=levels,
            level_dimensions={lv: view.level_dimensions(lv) for lv in levels},
            max_level=view.max_level,
            width_l0=view.slide.info.width_px,
            height_l0=view.slide.info.height_px,
            view_w_px=int(view_w_px),
            view_h_px=int(view_h_px),
        )

    def downsample(self, level: int) -> float:
        """Level-0 pixels per pixel of ``level``."""
        return float(2 ** (self.max_level - level))


def start(geometry: ViewGeometry) -> ViewState:
    """The whole slide in view, centred."""
    return ViewState(geometry.levels[0], 50.0, 50.0)


def clamp(state: ViewState, geometry: ViewGeometry) -> ViewState:
    """``state`` kept on the slide: an offered level (else the whole-slide one), the centre within 0–100 %."""
    level = state.level if state.level in geometry.levels else geometry.levels[0]
    return ViewState(level, float(np.clip(state.x_pct, 0.0, 100.0)), float(np.clip(state.y_pct, 0.0, 100.0)))


def half_view_pct(state: ViewState, geometry: ViewGeometry) -> tuple[float, float]:
    """Half the visible width and height at ``state``'s level, in percent of the slide (one pan step)."""
    w_lvl, h_lvl = geometry.level_dimensions[clamp(state, geometry).level]
    visible_w, visible_h = min(geometry.view_w_px, w_lvl), min(geometry.view_h_px, h_lvl)
    return 50.0 * visible_w / w_lvl, 50.0 * visible_h / h_lvl


def pan(state: ViewState, geometry: ViewGeometry, direction: str) -> ViewState:
    """Move the centre half a view ``direction`` ("left", "right", "up" or "down"), stopping at the slide's edge."""
    sx, sy = PAN_DIRECTIONS[direction]
    step_x, step_y = half_view_pct(state, geometry)
    return clamp(replace(state, x_pct=state.x_pct + sx * step_x, y_pct=state.y_pct + sy * step_y), geometry)


def zoom(state: ViewState, geometry: ViewGeometry, steps: int) -> ViewState:
    """``steps`` levels sharper (positive) or coarser (negative), within the offered levels; same centre."""
    state = clamp(state, geometry)
    i = geometry.levels.index(state.level)
    return replace(state, level=geometry.levels[int(np.clip(i + steps, 0, len(geometry.levels) - 1))])


def tile_level(geometry: ViewGeometry, tile_size_l0: float) -> int:
    """The sharpest offered level at which a tile of ``tile_size_l0`` level-0 pixels spans at most
    :data:`TILE_SHARE_OF_VIEW` of the view's width (the whole-slide level when none does)."""
    fitting = [
        lv
        for lv in geometry.levels
        if tile_size_l0 / geometry.downsample(lv) <= geometry.view_w_px * TILE_SHARE_OF_VIEW
    ]
    return max(fitting, default=geometry.levels[0])


def go_to_tile(geometry: ViewGeometry, corner_l0: tuple[float, float], tile_size_l0: float) -> ViewState:
    """The view centred on the tile whose top-left level-0 corner is ``corner_l0``, at :func:`tile_level`."""
    cx_l0 = float(corner_l0[0]) + tile_size_l0 / 2
    cy_l0 = float(corner_l0[1]) + tile_size_l0 / 2
    return clamp(
        ViewState(
            tile_level(geometry, tile_size_l0), 100 * cx_l0 / geometry.width_l0, 100 * cy_l0 / geometry.height_l0
        ),
        geometry,
    )


def top_tile(scores: np.ndarray) -> int | None:
    """Index of the highest finite score (N,), or None when no score is finite."""
    values = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(values).any():
        return None
    return int(np.nanargmax(np.where(np.isfinite(values), values, np.nan)))


def go_to_top_tile(
    geometry: ViewGeometry, coords_l0: np.ndarray, tile_size_l0: float, scores: np.ndarray
) -> ViewState | None:
    """The view of the highest-scoring tile (``coords_l0`` (N, 2) top-left corners), or None without scores."""
    best = top_tile(scores)
    if best is None:
        return None
    return go_to_tile(geometry, tuple(np.asarray(coords_l0)[best]), tile_size_l0)
