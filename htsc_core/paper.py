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
