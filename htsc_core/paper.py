"""The paper's reported numbers (HTSC, CMC 2020), quoted for side-by-side tables.

These are the paper's values, copied from its Tables 3-5 (docs/DESIGN.md section 8); nothing
of ours is ever read from here.
"""
from __future__ import annotations

# Table 3: accuracy on UCF101 / HMDB51, mAP on THUMOS14.
TABLE3 = {
    "two_stream": (0.880, 0.594, 0.661),
    "tsn_rgb_diff": (0.910, 0.645, 0.719),
    "tclsta": (0.940, 0.687, 0.847),
    "hts": (0.903, 0.605, 0.667),
    "htsc": (0.927, 0.667, 0.797),
}
# Table 4: ablation, same metrics.
TABLE4 = {
    "spatial": (0.809, 0.514, 0.721),
    "hidden_temporal": (0.841, 0.545, 0.673),
    "hts": (0.903, 0.605, 0.746),
    "hts_cln": (0.919, 0.645, 0.783),
    "hts_cln_awl": (0.927, 0.667, 0.797),
}
# Table 5: frames per second at test time on HMDB51.
TABLE5_FPS = {
    "two_stream_fusion": 33.2,
    "two_stream": 99.7,
    "tclsta": 89.5,
    "hts": 120.4,
    "htsc": 115.1,
}
PAPER_COLUMNS = ("paper_ucf101", "paper_hmdb51", "paper_thumos14")

DATASET_NAMES = ("UCF101", "HMDB51", "THUMOS14")


def _row(method: str) -> tuple[float, float, float]:
    for table in (TABLE4, TABLE3):
        if method in table:
            return table[method]
    raise KeyError(f"paper.py: {method!r} is in neither Table 3 nor Table 4")


def versus(a: str, b: str) -> str:
    """The paper's numbers for a claim "a vs b", per dataset, e.g. "UCF101 0.903 vs 0.880, ..."."""
    ra, rb = _row(a), _row(b)
    return ", ".join(f"{d} {x:.3f} vs {y:.3f}" for d, x, y in zip(DATASET_NAMES, ra, rb))


def value(method: str) -> str:
    """The paper's numbers for one method, per dataset, e.g. "UCF101 0.809, HMDB51 0.514, THUMOS14 0.721"."""
    return ", ".join(f"{d} {x:.3f}" for d, x in zip(DATASET_NAMES, _row(method)))


def fps_versus(a: str, b: str) -> str:
    """Table 5's fps for a timing claim, e.g. "120.4 vs 99.7 fps (HMDB51, GPU)"."""
    return f"{TABLE5_FPS[a]} vs {TABLE5_FPS[b]} fps (HMDB51, GPU)"
