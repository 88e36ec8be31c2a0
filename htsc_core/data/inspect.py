"""Looking at a dataset: one example frame per class, for the data notebook."""
from __future__ import annotations

import numpy as np
from htsc_core.data.video import VideoReadError, read_frames, video_length


def class_examples(cfg, records, classes) -> dict[str, np.ndarray]:
    """The middle frame of the first readable training video of each class (uint8 H x W x 3)."""
    examples: dict[str, np.ndarray] = {}
    for rec in records:
        label = rec.label if isinstance(rec.label, int) else rec.label[0]
        name = classes[label]
        if name in examples:
            continue
        try:
            examples[name] = read_frames(rec.path, [video_length(rec.path) // 2], size=cfg.frame_size or None)[0]
        except VideoReadError:
            continue  # check-videos lists it; a picture can do without it
        if len(examples) == len(classes):
            break
    return examples
