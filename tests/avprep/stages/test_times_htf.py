"""Hear-The-Flow's annotated Flickr test frames: restricted unpickling, the frame rule,
and the frames extracted exactly through ``--times``."""

from __future__ import annotations

import os
import pickle

import pytest
from click.testing import CliRunner

from avprep import catalog
from avprep.annotations.htf_frames import (
    HTF_OVERRIDES,
    htf_audio_centre,
    htf_frame,
    read_imagetoframe,
)
from avprep.cli import cli
from avprep.manifest import Manifest
from avprep.safepickle import UnsafePickleError
from avprep.stages.frames import read_jpeg
from tests.coded_media import frame_index, make_coded_video


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "RAN"
    p = tmp_path / "imagetoframe.pickle"
    p.write_bytes(pickle.dumps({"123": [5], "456": _Evil(str(marker))}, protocol=5))
    with pytest.raises(UnsafePickleError):
        read_imagetoframe(p)
    assert not marker.exists()


def test_the_pickles_shape_and_htfs_frame_rule(tmp_path):
    p = tmp_path / "imagetoframe.pickle"
    # HTF's layout (written here, not copied): {id: [frame numbers, ...]}, element 0 used
    p.write_bytes(pickle.dumps({"6289328021": [77, 78, 76], "5344317532": [80, 77]}, protocol=5))
    frames = read_imagetoframe(p)
    assert frames["6289328021"] == 77
    assert frames["5344317532"] == HTF_OVERRIDES["5344317532"] == 74  # set in HTF's script
    assert read_imagetoframe(p, overrides=False)["5344317532"] == 80
    assert htf_frame(77, 300) == 77 and htf_frame(300, 300) == 299  # the last: one before
    assert htf_audio_centre(10.02) == 5.0 and htf_audio_centre(9.99) == 4.5
    # as an id list (metadata parse / check-leakage): the ids it annotates
    from avprep.recipes import load_clips

    df = load_clips(p, fmt="htf-frame-pickle")
    assert list(df["clip_id"]) == ["6289328021", "5344317532"] and set(df["split"]) == {"test"}
    bad = tmp_path / "bad.pickle"
    bad.write_bytes(pickle.dumps({"../x": [1]}))
    with pytest.raises(Exception, match="not a Flickr id"):
        read_imagetoframe(bad)


def test_registry_has_the_pickles_with_checksums():
    for name, size in (("htf/imagetoframe", 5274), ("htf/imagetoframe-expanded", 33593)):
        e = catalog.get_entry(name)
        assert e.format == "htf-frame-pickle" and e.bytes == size and e.sha256
        assert e.urls[0].startswith("https://raw.githubusercontent.com/denfed/heartheflow/")


def test_htf_frames_extracted_exactly_through_times(tmp_path):
    videos = tmp_path / "videos"
    make_coded_video(videos / "111.mp4", frames=60, fps=30)
    make_coded_video(videos / "222.mp4", frames=45, fps=30)
    p = tmp_path / "imagetoframe.pickle"
    p.write_bytes(pickle.dumps({"111": [20, 21], "222": [45], "333": [3]}, protocol=5))
    times = tmp_path / "times.csv"
    res = CliRunner().invoke(cli, ["htf-test-times", "--pickle", str(p), "--videos", str(videos),
                                   "--out", str(times)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "2 of " in res.output and "333: no video" in res.output
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["extract", "--no-progress", "--in", str(videos), "--out",
                                   str(out), "--profile", "htf", "--times", str(times)])  # fmt: skip
    assert res.exit_code == 0, res.output
    recs = {r.clip_id: r for r in Manifest(out / "manifest.jsonl").records()}
    # 1-based frame 20 = decoded index 19; 222's 45 is its last frame: HTF takes 44 (index 43)
    assert frame_index(read_jpeg(out / recs["111"].outputs["frame"])) == 19
    assert frame_index(read_jpeg(out / recs["222"].outputs["frame"])) == 43
    assert recs["111"].outputs["flow"] and recs["222"].meta["next_frame_time"] is not None
    # audio centred on floor(2.0 s) / 2 = 1.0 s and floor(1.5 s) / 2 = 0.5 s
    assert recs["111"].meta["audio_centre"] == 1.0 and recs["222"].meta["audio_centre"] == 0.5
