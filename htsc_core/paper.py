"""The paper's reported numbers (HTSC, CMC 2020), quoted for side-by-side tables.

These are the paper's values, copied from its Tables 3-5 (docs/DESIGN.md section 8); nothing
of ours is ever read from here.
"""
from __future__ import annotations

# Table 3: accuracy on UCF101 / HMDB51, mAP on THUMOS14; None where the paper prints "--". The paper marks
# C3D's HMDB51 and TSN's HMDB51 / THUMOS14 cells with an unexplained "*"; its text layout makes a few cells
# ambiguous (docs/DESIGN.md section 8 says which reading we took).
TABLE3 = {
    "mvsv": (0.835, 0.559, None),
    "mv_fv": (0.785, 0.467, None),
    "emv": (0.802, None, 0.416),
    "c3d": (0.823, 0.497, 0.546),
    "3dnet": (0.902, None, None),
    "two_stream": (0.880, 0.594, 0.661),
    "two_stream_fusion": (0.925, 0.654, None),
    "tsn_rgb_diff": (0.910, 0.645, 0.719),
    "tclsta": (0.940, 0.687, 0.847),
    "hts": (0.903, 0.605, 0.667),
    "htsc": (0.927, 0.667, 0.797),
}
# Table 3's rows that have no "ours", and why (tables.TABLE3_COLUMNS' last column).
NOT_REPRODUCED = {
    "mvsv": "hand-crafted: improved dense trajectories with multi-view super vectors, not a network",
    "mv_fv": "hand-crafted: motion vectors of the compressed stream with Fisher vectors, not a network",
    "emv": "enhanced motion-vector CNN distilled from optical-flow CNNs on compressed video; not re-implemented",
    "3dnet": "no public definition of the network the paper cites (Diba et al. 2016)",
    "c3d": "the c3d stage was not trained in this run (`htsc train c3d`, then `htsc evaluate`; issue 26)",
    "two_stream_fusion": "the conv_fusion stage was not trained in this run (`htsc train conv_fusion`, then "
                         "`htsc evaluate`; issue 26)",
    "tclsta": "the tclsta stage was not trained in this run (`htsc train tclsta`, then `htsc evaluate`; "
              "docs/TCLSTA.md)",
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
    return ", ".join(f"{d} {x:.3f} vs {y:.3f}" for d, x, y in zip(DATASET_NAMES, ra, rb)
                     if x is not None and y is not None)


def value(method: str) -> str:
    """The paper's numbers for one method, per dataset, e.g. "UCF101 0.809, HMDB51 0.514, THUMOS14 0.721"."""
    return ", ".join(f"{d} {x:.3f}" for d, x in zip(DATASET_NAMES, _row(method)) if x is not None)


def fps_versus(a: str, b: str) -> str:
    """Table 5's fps for a timing claim, e.g. "120.4 vs 99.7 fps (HMDB51, GPU)"."""
    return f"{TABLE5_FPS[a]} vs {TABLE5_FPS[b]} fps (HMDB51, GPU)"
