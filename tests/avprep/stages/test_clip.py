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


def test_pack_reads_an_extraction_folder_as_the_same_clip_record(tmp_path):
    from avprep.store import source
    from tests.store_fixtures import make_extract_dir

    root, ids = make_extract_dir(tmp_path / "ex", 3, flow=True)
    sel, modalities = source.select(root, progress=False)
    assert source.Clip is Clip and [type(c) for c in sel.clips] == [Clip] * 3
    clip = sel.clips[0]
    assert clip.clip_id == ids[0] and modalities == ("frame", "audio", "spectrogram", "flow")
    assert clip.output("frame") == root / "frames" / f"{ids[0]}.jpg" and clip.frame.is_file()
    assert clip.output("flow").is_file() and "frame_time" in clip.meta
    with pytest.raises(ValueError, match="unknown output"):
        clip.output("video")


def test_repeated_ids_follow_one_rule_in_recipes_and_prepare_clips(tmp_path):
    from avprep.errors import InputError
    from avprep.recipes import load_clips

    rows = [
        {"clip_id": "a", "url": "http://h/a.mp4"},
        {"clip_id": "a", "url": "http://h/a.mp4"},  # the same clip again: dropped, counted
        {"clip_id": "a", "url": "http://h/other.mp4"},  # one id, two videos: a bad row
    ]
    with pytest.raises(InputError, match="already stands for another URL"):
        prepare_clips(rows)
    prepared = prepare_clips(rows, skip_bad=True)
    assert [c.clip_id for c in prepared.clips] == ["a"] and prepared.duplicates == 1
    assert prepared.rejected == [
        "row 3: clip id 'a' already stands for another URL (http://h/a.mp4); "
        "give the files distinct names"
    ]
    # the recipe parser applies the same rule to an id list's lines
    urls = tmp_path / "urls.txt"
    urls.write_text("http://h/x/a.mp4\nhttp://h/x/a.mp4\nhttp://h/y/a.mp4\n")
    df = load_clips(urls, fmt="url-list", skip_bad=True)
    assert df["clip_id"].tolist() == ["a"] and df.attrs["duplicates"] == 1
    assert "already stands for another URL" in df.attrs["bad_lines"][0][1]
