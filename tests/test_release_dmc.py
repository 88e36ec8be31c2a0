"""htsc_core.release_dmc: the vendored DMC-Net release, every file loaded, checksummed, aligned and scored."""
import hashlib
import re
import shutil

import numpy as np
import pytest

from htsc_core import release_dmc
from htsc_core.release_data import ReleaseDataError

DIR = release_dmc.DMC_DIR


def _readme_top1() -> dict[tuple[str, str, int], float]:
    """The top-1 table of data/external/dmc_net_scores/README.md: (dataset, stream, split) -> value."""
    out = {}
    for line in (DIR / "README.md").read_text().splitlines():
        m = re.fullmatch(r"\| (ucf101|hmdb51) \| (\w+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", line.strip())
        if m:
            for split, v in zip((1, 2, 3), m.groups()[2:]):
                out[(m.group(1), m.group(2), split)] = float(v)
    return out


@pytest.fixture(scope="module")
def data():
    return release_dmc.load_all()


def test_every_shipped_file_is_listed_checksummed_and_loaded(data):
    listed = dict(reversed(line.split()) for line in (DIR / "SHA256SUMS").read_text().splitlines() if line.strip())
    shipped = {p.name for p in DIR.glob("*.npz")}
    expected = {release_dmc.file_name(d, s, st) for d in release_dmc.DATASETS for s in release_dmc.SPLITS
                for st in release_dmc.STREAMS}
    assert shipped == expected == set(listed) and len(shipped) == 18
    for name in shipped:  # the checksums, computed here with hashlib
        assert hashlib.sha256((DIR / name).read_bytes()).hexdigest() == listed[name], name
    seen = {}
    for rel in data.values():
        seen.update(rel.checksums)
    assert seen == listed  # every file went through the loader's verification
    assert (DIR / "LICENSE").read_text().startswith("MIT License")


def test_sizes_and_class_maps(data):
    sizes = {("ucf101", 1): 3783, ("ucf101", 2): 3734, ("ucf101", 3): 3696}
    for (dataset, split), rel in data.items():
        m = 101 if dataset == "ucf101" else 51
        assert rel.n == sizes.get((dataset, split), 1530) and rel.num_classes == m
        assert set(rel.scores) == set(release_dmc.STREAMS)
        for x in rel.scores.values():
            assert x.shape == (rel.n, m) and x.dtype == np.float64
        for vid, y in zip(rel.video_ids, rel.labels):
            assert vid.split("/")[0] == rel.class_names[y]
    ucf, hmdb = data[("ucf101", 1)], data[("hmdb51", 1)]
    assert ucf.class_names[:3] == ["ApplyEyeMakeup", "ApplyLipstick", "Archery"] and ucf.class_names[-1] == "YoYo"
    assert hmdb.class_names[0] == "smile" and len(set(hmdb.class_names)) == 51  # the release's own order
    assert np.bincount(hmdb.labels).tolist() == [30] * 51


def test_alignment_by_name_against_the_raw_files(data):
    """Each stream's row i is the raw file's row of the video named video_ids[i] (read here with numpy)."""
    for (dataset, split), rel in data.items():
        for stream in release_dmc.STREAMS:
            with np.load(DIR / release_dmc.file_name(dataset, split, stream)) as z:
                row = {str(n).rsplit(".", 1)[0]: i for i, n in enumerate(z["names"])}
                idx = np.array([row[v] for v in rel.video_ids])
                assert np.array_equal(rel.scores[stream], z["scores"][idx].astype(np.float64))
                assert np.array_equal(rel.labels, z["labels"][idx])


def test_top1_of_every_file_as_its_readme_states(data):
    table = _readme_top1()
    assert len(table) == 18
    assert table[("ucf101", "rgb_iframe", 1)] == 0.867 and table[("ucf101", "tvl1_flow", 1)] == 0.827
    assert table[("ucf101", "dmc_generated", 1)] == 0.800
    for (dataset, stream, split), stated in table.items():
        with np.load(DIR / release_dmc.file_name(dataset, split, stream)) as z:  # from the file itself
            raw = float(np.mean(z["scores"].argmax(1) == z["labels"]))
        rel = data[(dataset, split)]
        loaded = float(np.mean(rel.scores[stream].argmax(1) == rel.labels))
        assert round(raw, 3) == stated and loaded == pytest.approx(raw), (dataset, stream, split, raw)


def _copy(tmp_path):
    dst = tmp_path / "dmc"
    shutil.copytree(DIR, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def _expected(root, name) -> str:
    return next(line.split()[0] for line in (root / "SHA256SUMS").read_text().splitlines() if line.endswith(name))


@pytest.mark.parametrize("damage", ["altered", "truncated", "missing"])
def test_bad_file_names_the_file_and_its_expected_checksum(tmp_path, damage):
    dst = _copy(tmp_path)
    name = "hmdb51_split2_dmc_generated.npz"
    target = dst / name
    if damage == "altered":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01  # one flipped bit
        target.write_bytes(bytes(data))
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:1000])
    else:
        target.unlink()
    with pytest.raises(ReleaseDataError) as err:
        release_dmc.load_dmc("hmdb51", 2, dst)
    msg = str(err.value)
    assert name in msg and _expected(dst, name) in msg
    assert ("missing" if damage == "missing" else "checksum mismatch") in msg
    release_dmc.load_dmc("hmdb51", 1, dst)  # the other splits still load


def _rewrite(root, name, **arrays):
    """Replace arrays of one file and its line in SHA256SUMS (a consistent, but different, release)."""
    with np.load(root / name) as z:
        out = {k: z[k] for k in z.files}
    out.update(arrays)
    np.savez_compressed(root / name, **out)
    digest = hashlib.sha256((root / name).read_bytes()).hexdigest()
    lines = [f"{digest}  {name}" if line.endswith(name) else line
             for line in (root / "SHA256SUMS").read_text().splitlines()]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def test_streams_are_aligned_by_name_and_disagreement_is_refused(tmp_path, data):
    dst = _copy(tmp_path)
    name = "ucf101_split3_tvl1_flow.npz"
    with np.load(dst / name) as z:
        perm = np.random.default_rng(0).permutation(z["names"].size)
        scores, labels, names = z["scores"][perm], z["labels"][perm], z["names"][perm]
    _rewrite(dst, name, scores=scores, labels=labels, names=names)
    shuffled = release_dmc.load_dmc("ucf101", 3, dst)
    assert np.array_equal(shuffled.scores["tvl1_flow"], data[("ucf101", 3)].scores["tvl1_flow"])
    labels = labels.copy()
    labels[0] = (labels[0] + 1) % 101
    _rewrite(dst, name, labels=labels)
    with pytest.raises(ReleaseDataError, match=rf"{name}: 1 videos have another label"):
        release_dmc.load_dmc("ucf101", 3, dst)
    _rewrite(dst, name, scores=scores[1:], labels=labels[1:], names=names[1:])
    with pytest.raises(ReleaseDataError, match=rf"{name}: 3695 videos"):
        release_dmc.load_dmc("ucf101", 3, dst)


def test_class_map_refuses_a_label_for_two_folders():
    assert release_dmc.class_map(["B/x", "A/y", "B/z"], [1, 0, 1], "f") == ["A", "B"]
    with pytest.raises(ReleaseDataError, match="several class folders"):
        release_dmc.class_map(["B/x", "A/y"], [0, 0], "f")
    with pytest.raises(ReleaseDataError, match="not 0..1"):
        release_dmc.class_map(["B/x", "A/y"], [0, 2], "f")


def test_crossfit_groups_by_hand():
    ucf = release_dmc.crossfit_groups("ucf101", ["A/v_A_g08_c01", "B/v_B_g14_c03"])
    assert ucf.tolist() == ["g08", "g14"]
    # source videos: "Movie_X" (3 clips, two classes), "Home" (2), "Run_Fast" (1); three folds, largest first
    ids = ["run/Movie_X_run_f_cm_np1_ri_med_0", "run/Movie_X_run_f_cm_np1_ri_med_1",
           "jump/Movie_X_jump_u_nm_np2_fr_goo_4", "jump/Home_jump_f_nm_np1_le_bad_0",
           "jump/Home_jump_f_nm_np1_le_bad_1", "run/Run_Fast_run_l_cm_np3_ba_med_2"]
    groups = release_dmc.crossfit_groups("hmdb51", ids, n_folds=3)
    assert groups.tolist() == ["f1", "f1", "f1", "f2", "f2", "f3"]
    with pytest.raises(ReleaseDataError, match="not an HMDB51 clip name"):
        release_dmc.crossfit_groups("hmdb51", ["run/odd_name"])


def test_hmdb51_folds_keep_each_source_video_in_one_fold(data):
    for split in release_dmc.SPLITS:
        rel = data[("hmdb51", split)]
        source = [re.sub(rf"_{re.escape(v.split('/')[0])}_[a-z]_.*$", "", v.split("/", 1)[1]) for v in rel.video_ids]
        fold_of = {}
        for s, g in zip(source, rel.groups):
            assert fold_of.setdefault(s, g) == g
        counts = np.unique(rel.groups, return_counts=True)[1]
        assert counts.size == release_dmc.N_FOLDS and counts.max() - counts.min() <= 40


def test_split_overlaps_as_docs_state(data):
    """docs/DESIGN.md section 7: UCF101's test lists are disjoint, HMDB51's share 104-155 videos pairwise."""
    for dataset, lo, hi in (("ucf101", 0, 0), ("hmdb51", 104, 155)):
        ids = {s: set(data[(dataset, s)].video_ids) for s in release_dmc.SPLITS}
        shared = [len(ids[a] & ids[b]) for a, b in ((1, 2), (1, 3), (2, 3))]
        assert min(shared) == lo and max(shared) == hi, (dataset, shared)
