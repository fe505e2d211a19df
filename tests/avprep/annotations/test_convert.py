"""``avprep convert``: VGG-SS JSON -> SSL-TIE XML and Flickr XML -> JSON, with the
defects of the published file handled, reported and read back exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import defusedxml.ElementTree as safe_et
import numpy as np
import pytest
from click.testing import CliRunner

from avprep.annotations import SENTINEL, gt_map, load_annotations
from avprep.annotations.convert import vggss_json_to_xml
from avprep.cli import cli
from avprep.errors import AnnotationError, InputError
from tests.annotation_fixtures import FLICKR_CLIPS, VGGSS_ENTRIES, write_flickr, write_vggss


def run(*args: str):
    result = CliRunner().invoke(cli, ["convert", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def ssl_tie_style_read(path) -> list[list[float]]:
    """How SSL-TIE reads a clip: every root <bbox>, every child, floats by position."""
    root = safe_et.parse(str(path)).getroot()
    return [
        [float(x.text) for x in box] for holder in root if holder.tag == "bbox" for box in holder
    ]


@pytest.mark.parametrize("policy", ["drop", "clip", "keep"])
def test_vggss_xml_round_trip(tmp_path, policy):
    src = write_vggss(tmp_path / "v.json")
    out = tmp_path / "anno"
    text = run("vggss-xml", "--json", str(src), "--out", str(out), "--bad-boxes", policy)
    assert f"{len(VGGSS_ENTRIES)} written, 0 unchanged" in text
    converted = load_annotations(src, "vggss", bad_boxes=policy)
    back = load_annotations(out, "vggss", bad_boxes=policy)
    assert list(back) == sorted(converted)
    for cid, ann in converted.items():
        assert back[cid].boxes == ann.boxes
        assert ssl_tie_style_read(out / f"{cid}.xml") == [b.as_list() for b in ann.boxes]
        assert back[cid].label == ann.label
    assert not list(out.glob(".tmp-*"))
    assert "sentinel: 2 boxes in 2 clips" in text
    assert "clips with an empty ground truth: M1P1xla8rg0_000000, MKC9LvRivTM_000030" in text
    if policy == "keep":
        assert SENTINEL in [v for b in back["MKC9LvRivTM_000030"].boxes for v in b.as_list()]
    else:
        assert ssl_tie_style_read(out / "MKC9LvRivTM_000030.xml") == []


def test_vggss_xml_policies_differ_where_they_should(tmp_path):
    src = write_vggss(tmp_path / "v.json")
    run("vggss-xml", "--json", str(src), "--out", str(tmp_path / "d"), "--bad-boxes", "drop")
    run("vggss-xml", "--json", str(src), "--out", str(tmp_path / "c"))  # default: clip
    assert ssl_tie_style_read(tmp_path / "d" / "oob_clip_000001.xml") == []
    assert ssl_tie_style_read(tmp_path / "c" / "oob_clip_000001.xml") == [[0.0, 0.2, 1.0, 0.9]]


def test_vggss_xml_resumes_ids_and_report(tmp_path):
    src = write_vggss(tmp_path / "v.json")
    out = tmp_path / "anno"
    ids = tmp_path / "ids.txt"
    ids.write_text("zpWuikVorYg_000032.jpg\nMKC9LvRivTM_000030.jpg\n")
    report = tmp_path / "defects.json"
    text = run(
        "vggss-xml",
        "--json",
        str(src),
        "--out",
        str(out),
        "--ids",
        str(ids),
        "--report",
        str(report),
    )
    assert "2 written" in text and sorted(p.name for p in out.iterdir()) == [
        "MKC9LvRivTM_000030.xml",
        "zpWuikVorYg_000032.xml",
    ]
    rep = json.loads(report.read_text())
    assert rep["policy"] == "clip"
    assert {d["kind"] for d in rep["defects"]} == {"sentinel", "no_valid_box"}
    again = run("vggss-xml", "--json", str(src), "--out", str(out), "--ids", str(ids))
    assert "0 written, 2 unchanged" in again
    (out / "zpWuikVorYg_000032.xml").write_text("<annotation/>")
    assert "1 written, 1 unchanged" in run(
        "vggss-xml", "--json", str(src), "--out", str(out), "--ids", str(ids)
    )
    with pytest.raises(InputError, match="1 requested ids are not in"):
        vggss_json_to_xml(src, out, ids=["nope_000001"])


def test_unknown_ids_fail_with_a_readable_error(tmp_path):
    src = write_vggss(tmp_path / "v.json")
    proc = subprocess.run(
        [sys.executable, "-c", "from avprep.cli import main; main()", "convert", "vggss-xml",
         "--json", str(src), "--out", str(tmp_path / "o"), "--ids", "ghost_000001"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "error: 1 requested ids are not in" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_non_finite_coordinates_cannot_be_kept_in_xml(tmp_path):
    src = tmp_path / "nan.json"
    src.write_text('[{"file": "n_000001", "bbox": [[0.1, 0.1, NaN, 0.5]]}]')
    with pytest.raises(AnnotationError, match="non-finite"):
        vggss_json_to_xml(src, tmp_path / "o", bad_boxes="keep")
    res = vggss_json_to_xml(src, tmp_path / "o2")  # default drops it, and says so
    assert res.defects.boxes_by_kind == {"non_finite": 1}
    assert ssl_tie_style_read(tmp_path / "o2" / "n_000001.xml") == []


def test_real_vggss_conversion(tmp_path, shared_metadata):
    src = shared_metadata / "sspl" / "vggss_test_5158.json"
    anns = load_annotations(src, "vggss")
    defect_ids = [c for c, a in anns.items() if a.defects]
    ids = defect_ids + list(anns)[:150]
    res = vggss_json_to_xml(src, tmp_path / "anno", ids=list(dict.fromkeys(ids)))
    assert res.defects.boxes_by_kind == {"sentinel": 12, "degenerate": 6}
    assert res.defects.empty_clips == ["M1P1xla8rg0_000000", "MKC9LvRivTM_000030"]
    back = load_annotations(tmp_path / "anno", "vggss")
    assert len(back) == res.written
    for cid, ann in back.items():
        assert ann.boxes == anns[cid].boxes
        for rule in ("clean", "lvs"):
            np.testing.assert_array_equal(gt_map(ann, 224, rule), gt_map(anns[cid], 224, rule))


def test_flickr_json_round_trip(tmp_path):
    folder = write_flickr(tmp_path / "xml", FLICKR_CLIPS)
    out = tmp_path / "flickr.json"
    text = run("flickr-json", "--xml-dir", str(folder), "--out", str(out), "--bad-boxes", "keep")
    assert "1 written" in text and "degenerate: 1 boxes in 1 clips" in text
    entries = json.loads(out.read_text())
    assert [e["file"] for e in entries] == sorted(FLICKR_CLIPS)
    assert entries[1]["annotator"] == [0, 0, 1, 2]
    from_xml = load_annotations(folder, "flickr", bad_boxes="keep")
    from_json = load_annotations(out, "flickr", bad_boxes="keep")
    for cid, a in from_xml.items():
        b = from_json[cid]
        assert b.gt_kind == "consensus" and b.boxes == a.boxes
        assert b.raw_annotators == a.raw_annotators
        # 256-pixel integers come back exactly
        assert [tuple(v * 256 for v in box) for box in b.raw_boxes] == list(a.raw_boxes)
        for rule in ("clean", "lvs", "ezvsl", "ssltie"):
            np.testing.assert_array_equal(gt_map(a, 224, rule), gt_map(b, 224, rule))
    # the same file read as VGG-SS is a union, not a consensus
    union = load_annotations(out, "vggss")["10000130166"]
    assert gt_map(union, 224).max() == 1 and gt_map(from_json["10000130166"], 224).min() == 0
    assert "0 written, 1 unchanged" in run(
        "flickr-json", "--xml-dir", str(folder), "--out", str(out), "--bad-boxes", "keep"
    )
