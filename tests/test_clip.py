"""The one clip record (avprep.clip): rows -> Clip, and a manifest record -> its video."""

from __future__ import annotations

import dataclasses

import pytest

from avprep.clip import Clip, prepare_clips, video_of
from avprep.stages import download, extract


def test_one_clip_type_from_rows_through_download_and_extract():
    clips = prepare_clips(
        [{"clip_id": "zpWuikVorYg_000032"}, {"clip_id": "f1", "url": "http://h/f1.mp4"},
         {"clip_id": "f1", "url": "http://h/f1.mp4"}]
    ).clips  # fmt: skip
    assert [type(c) for c in clips] == [Clip, Clip]
    assert clips[0].url == "https://www.youtube.com/watch?v=zpWuikVorYg" and clips[0].start == 32
    assert download.Clip is Clip and extract.Clip is Clip
    with pytest.raises(dataclasses.FrozenInstanceError):
        clips[0].url = "http://elsewhere/"  # type: ignore[misc]


def test_a_records_video_is_the_writers_key_inside_the_folder(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "s.mp4").write_bytes(b"x")  # synth: outputs["video"]
    (tmp_path / "d.webm").write_bytes(b"x")  # download: outputs["path"]
    (tmp_path / "bare.mkv").write_bytes(b"x")  # no outputs: <id>.<suffix>
    outside = tmp_path.parent / "outside.mp4"
    outside.write_bytes(b"x")
    assert video_of(tmp_path, "s", {"video": "videos/s.mp4"}) == tmp_path / "videos" / "s.mp4"
    assert video_of(tmp_path, "d", {"path": "d.webm"}) == tmp_path / "d.webm"
    assert video_of(tmp_path, "bare", {}) == tmp_path / "bare.mkv"
    # a record pointing outside its folder is not followed
    assert video_of(tmp_path, "o", {"path": str(outside)}) is None
    assert video_of(tmp_path, "o", {"path": "../outside.mp4"}) is None
