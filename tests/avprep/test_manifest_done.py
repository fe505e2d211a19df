"""One manifest name and one "is it done?" rule (avprep.manifest), used by every stage."""

from __future__ import annotations

from avprep import frame_pairs, manifest
from avprep.manifest import FAILED, MANIFEST_NAME, OK, ClipRecord, is_done
from avprep.stages import download, extract, ingest
from avprep.store import released, source


def test_every_stage_uses_the_one_manifest_name():
    assert MANIFEST_NAME == "manifest.jsonl"
    for module in (download, extract, ingest, released, source, frame_pairs):
        assert module.MANIFEST_NAME is manifest.MANIFEST_NAME, module.__name__
    assert extract.is_done is is_done


def test_done_needs_an_ok_record_whose_outputs_all_exist(tmp_path):
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "a.jpg").write_bytes(b"x")
    (tmp_path / "stack").mkdir()
    outputs = {"frame": "frames/a.jpg", "frames": "stack"}
    assert is_done(ClipRecord("a", OK, outputs=outputs), tmp_path)
    assert not is_done(None, tmp_path)
    assert not is_done(ClipRecord("a", FAILED, error="x", outputs=outputs), tmp_path)
    assert not is_done(ClipRecord("a", OK), tmp_path)  # no outputs recorded
    missing = {**outputs, "audio": "audio/a.wav"}
    assert not is_done(ClipRecord("a", OK, outputs=missing), tmp_path)


def test_a_download_is_done_only_as_a_plain_file_of_its_recorded_size(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"12345")
    rec = ClipRecord("a", OK, outputs={"path": "a.mp4"}, meta={"bytes": 5})
    assert download._is_done(rec, tmp_path) and is_done(rec, tmp_path)
    cut = ClipRecord("a", OK, outputs={"path": "a.mp4"}, meta={"bytes": 9})
    assert is_done(cut, tmp_path) and not download._is_done(cut, tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.mp4").write_bytes(b"1")
    nested = ClipRecord("b", OK, outputs={"path": "sub/b.mp4"})
    assert is_done(nested, tmp_path) and not download._is_done(nested, tmp_path)
