"""Annotations: parsing (real VGG-SS file, Flickr XML, Chaotic World), defects,
bad-box policies, hostile XML, ground-truth maps under every pixel rule."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from avprep.annotations import (
    SENTINEL,
    Annotation,
    Box,
    box_pixel_ranges,
    gt_map,
    gt_map_x2,
    load_annotations,
    read_ids,
    summarise_defects,
)
from avprep.errors import AnnotationError, ConfigError, InputError
from tests.annotation_fixtures import (
    BILLION_LAUGHS,
    FLICKR_CLIPS,
    external_entity_xml,
    flickr_xml,
    write_flickr,
    write_vggss,
)

# -- the real VGG-SS file -------------------------------------------------------


@pytest.fixture(scope="module")
def vggss_path(shared_metadata):
    return shared_metadata / "sspl" / "vggss_test_5158.json"


@pytest.fixture(scope="module")
def vggss(vggss_path):
    return load_annotations(vggss_path, "vggss")


def test_real_vggss_counts(vggss):
    assert len(vggss) == 5158
    assert sum(len(a.raw_boxes) for a in vggss.values()) == 5941
    assert len({a.label for a in vggss.values()}) == 221
    hist = Counter(len(a.raw_boxes) for a in vggss.values())
    assert dict(hist) == {1: 4619, 2: 385, 3: 94, 4: 37, 5: 18, 6: 3, 7: 2}
    # every usable coordinate is a multiple of 1/320 of the frame
    coords = np.array([v for a in vggss.values() for b in a.boxes for v in b.as_list()])
    assert np.allclose(coords * 320, np.round(coords * 320), atol=1e-6)
    assert coords.min() >= 0 and coords.max() <= 1


def test_real_vggss_defects(vggss):
    s = summarise_defects(vggss)
    assert s.boxes_by_kind == {"sentinel": 12, "degenerate": 6}
    assert s.clips_by_kind["sentinel"] == 12
    n_sentinel_coords = sum(
        1 for a in vggss.values() for b in a.raw_boxes for v in b if v == SENTINEL
    )
    assert n_sentinel_coords == 14
    details = [d.detail for a in vggss.values() for d in a.defects if d.kind == "degenerate"]
    assert sum("xmin = xmax" in d for d in details) == 4
    assert sum("ymin = ymax" in d or "ymin > ymax" in d for d in details) == 3
    assert s.empty_clips == ["M1P1xla8rg0_000000", "MKC9LvRivTM_000030"]
    assert s.n_boxes == 5941 - 18
    # sentinel coordinates are always xmax or ymax
    for a in vggss.values():
        for b in a.raw_boxes:
            assert b[0] != SENTINEL and b[1] != SENTINEL


def test_real_vggss_policies_agree_on_the_published_file(vggss_path, vggss):
    dropped = load_annotations(vggss_path, "vggss", bad_boxes="drop")
    kept = load_annotations(vggss_path, "vggss", bad_boxes="keep")
    assert {k: a.boxes for k, a in dropped.items()} == {k: a.boxes for k, a in vggss.items()}
    assert sum(len(a.boxes) for a in kept.values()) == 5941
    # the raw boxes never depend on the policy
    assert all(kept[k].raw_boxes == vggss[k].raw_boxes for k in vggss)


def test_real_vggss_empty_ground_truth(vggss):
    for cid in ("M1P1xla8rg0_000000", "MKC9LvRivTM_000030"):
        for rule in ("clean", "lvs", "ezvsl", "ssltie"):
            assert gt_map(vggss[cid], 224, rule).sum() == 0
    # at 320 px the clean rule lands exactly on the annotators' grid:
    # x 129..192, y 81..240 for [0.403125, 0.253125, 0.6, 0.75]
    g = gt_map(vggss["zpWuikVorYg_000032"], 320, "clean")
    assert g.sum() == 63 * 159 and g[81:240, 129:192].min() == 1


# -- policies on a small file -----------------------------------------------------


def test_bad_box_policies(tmp_path):
    path = write_vggss(tmp_path / "v.json")
    drop = load_annotations(path, "vggss", bad_boxes="drop")
    clip = load_annotations(path, "vggss", bad_boxes="clip")
    keep = load_annotations(path, "vggss", bad_boxes="keep")
    assert drop["oob_clip_000001"].boxes == []
    assert clip["oob_clip_000001"].boxes == [Box(0.0, 0.2, 1.0, 0.9)]
    assert keep["oob_clip_000001"].boxes == [Box(-0.003125, 0.2, 1.003125, 0.9)]
    assert [b.as_list() for b in clip["Db6Hjt0x28k_000056"].boxes] == [[0.1, 0.1, 0.3, 0.4]]
    assert len(keep["Db6Hjt0x28k_000056"].boxes) == 2
    kinds = {d.kind for d in clip["Db6Hjt0x28k_000056"].defects}
    assert kinds == {"sentinel"}
    assert [d.action for d in clip["oob_clip_000001"].defects] == ["clipped"]
    assert {"no_valid_box"} <= {d.kind for d in keep["MKC9LvRivTM_000030"].defects}
    with pytest.raises(ConfigError, match="valid: drop, clip, keep"):
        load_annotations(path, "vggss", bad_boxes="fix")


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"file": "a"}, "expected a JSON list"),
        ([{"file": "a_000001"}], "needs 'file' and 'bbox'"),
        ([{"file": "../etc_000001", "bbox": []}], "unsafe clip id"),
        ([{"file": "a_000001", "bbox": [[0, 0, 1]]}], r"\[xmin, ymin, xmax, ymax\]"),
        ([{"file": "a_000001", "bbox": [[0, 0, "1", 1]]}], "not a number"),
        ([{"file": "a_000001", "bbox": []}, {"file": "a_000001", "bbox": []}], "appears twice"),
    ],
)
def test_bad_json_is_a_clear_error(tmp_path, payload, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(AnnotationError, match=message):
        load_annotations(path, "vggss")


def test_missing_or_invalid_json(tmp_path):
    with pytest.raises(AnnotationError, match="not found"):
        load_annotations(tmp_path / "nope.json", "vggss")
    (tmp_path / "t.json").write_text("[{")
    with pytest.raises(AnnotationError, match="not valid JSON"):
        load_annotations(tmp_path / "t.json", "vggss")
    with pytest.raises(ConfigError, match="unknown benchmark"):
        load_annotations(tmp_path / "t.json", "coco")


# -- Flickr XML -----------------------------------------------------------------


def test_flickr_xml_real_structure(tmp_path):
    folder = write_flickr(tmp_path / "anno", FLICKR_CLIPS)
    anns = load_annotations(folder, "flickr")
    assert list(anns) == sorted(FLICKR_CLIPS)
    a = anns["10007936344"]
    assert a.source_size == (256, 256)
    assert a.raw_boxes == (
        (10, 20, 100, 200),
        (150, 30, 250, 90),
        (12, 22, 98, 190),
        (0, 0, 256, 256),
    )
    assert a.raw_annotators == (0, 0, 1, 2)
    assert a.n_annotators == 3
    assert a.boxes[0] == Box(10 / 256, 20 / 256, 100 / 256, 200 / 256, annotator=0)
    assert a.gt_kind == "consensus"
    # zero-width box: reported, dropped from the usable boxes, raw value kept
    b = anns["10008553263"]
    assert [d.kind for d in b.defects] == ["degenerate"]
    assert len(b.boxes) == 2 and len(b.raw_boxes) == 3
    # a single file and a single-file load agree with the folder
    one = load_annotations(folder / "10000130166.xml", "flickr")
    assert one["10000130166"].raw_boxes == anns["10000130166"].raw_boxes


def test_flickr_consensus_map_by_hand(tmp_path):
    folder = write_flickr(tmp_path / "anno", {"1": [[(0, 0, 128, 128)], [(64, 64, 192, 192)]]})
    a = load_annotations(folder, "flickr")["1"]
    for rule in ("clean", "lvs", "ezvsl", "ssltie"):
        g = gt_map(a, 224, rule)
        # 256 -> 224: 128 -> 112, 64 -> 56, 192 -> 168
        assert g[:56, :112].min() == 0.5 and g[56:112, 56:112].min() == 1.0
        assert g[112:168, 112:168].max() == 0.5 and g[168:, :].sum() == 0
        assert set(np.unique(g)) == {0.0, 0.5, 1.0}
        assert g.sum() == 0.5 * (112 * 112 + 112 * 112 - 2 * 56 * 56) + 56 * 56
    # boxes of the same annotator count separately, as in every original
    folder2 = write_flickr(tmp_path / "same", {"2": [[(0, 0, 128, 128), (0, 0, 128, 128)]]})
    assert gt_map(load_annotations(folder2, "flickr")["2"], 224, "lvs").max() == 1.0


def test_flickr_original_rule_truncates(tmp_path):
    folder = write_flickr(tmp_path / "anno", {"3": [[(3, 5, 11, 13)]]})
    a = load_annotations(folder, "flickr")["3"]
    # int(224*3/256)=2, int(224*5/256)=4, int(224*11/256)=9, int(224*13/256)=11
    assert box_pixel_ranges(a, 224, "lvs") == [(4, 11, 2, 9)]
    # clean: pixel centres inside [2.625, 9.625) x [4.375, 11.375)
    assert box_pixel_ranges(a, 224, "clean") == [(4, 11, 3, 10)]


def test_flickr_non_bbox_element_is_skipped_and_reported(tmp_path):
    p = tmp_path / "7.xml"
    p.write_text(flickr_xml([[(0, 0, 10, 10)]], extra="<note>blurry</note>"))
    a = load_annotations(p, "flickr")["7"]
    assert len(a.boxes) == 1
    assert [d.kind for d in a.defects] == ["ignored_element"]


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "<a><o><bbox><l>x</l><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax></bbox></o></a>",
            "4 children",
        ),
        (
            "<a><o><bbox><l>x</l><xmin>1.5</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax></bbox></o></a>",
            "non-integers",
        ),
        ("<a><o><bbox>", "malformed XML"),
    ],
)
def test_flickr_malformed(tmp_path, body, message):
    p = tmp_path / "8.xml"
    p.write_text(body)
    with pytest.raises(AnnotationError, match=message):
        load_annotations(p, "flickr")


def test_hostile_xml_is_refused(tmp_path):
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(BILLION_LAUGHS)
    with pytest.raises(AnnotationError, match="entity"):
        load_annotations(bomb, "flickr")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = tmp_path / "xxe.xml"
    xxe.write_text(external_entity_xml(secret))
    with pytest.raises(AnnotationError) as info:
        load_annotations(xxe, "flickr")
    assert "TOP-SECRET" not in str(info.value)
    # the SSL-TIE XML reader goes through the same guard
    with pytest.raises(AnnotationError, match="entity"):
        load_annotations(bomb, "vggss")
    # a folder containing a bomb fails as a whole, naming the file
    folder = write_flickr(tmp_path / "mixed", FLICKR_CLIPS)
    (folder / "999.xml").write_text(BILLION_LAUGHS)
    with pytest.raises(AnnotationError, match="999.xml"):
        load_annotations(folder, "flickr")


# -- Chaotic World ----------------------------------------------------------------


def test_chaotic_world_pixels_and_duplicates(tmp_path):
    p = tmp_path / "cw.json"
    p.write_text(
        json.dumps(
            [
                {"file": "ABCDEFGH_000012", "class": "car", "bbox": [32, 18, 160, 90]},
                {"file": "ABCDEFGH_000013", "class": "dog", "bbox": [300, 100, 330, 190]},
                {"file": "ABCDEFGH_000012", "class": "car", "bbox": [0, 0, 16, 9]},
            ]
        )
    )
    anns = load_annotations(p, "chaotic")
    a = anns["ABCDEFGH_000012"]
    assert a.boxes[0] == Box(0.1, 0.1, 0.5, 0.5)
    assert len(a.boxes) == 2 and [d.kind for d in a.defects] == ["duplicate_entry"]
    b = anns["ABCDEFGH_000013"]
    assert b.boxes == [Box(300 / 320, 100 / 180, 1.0, 1.0)]  # clipped to the frame
    g = gt_map(a, (180, 320), "clean")
    assert g.sum() == 128 * 72 + 16 * 9 and g.max() == 1.0
    assert gt_map(a, 224, "lvs")[22:112, 22:112].min() == 1.0


# -- GT maps ------------------------------------------------------------------------


def test_vggss_union_and_pixel_rules():
    a = Annotation("c_000001", "vggss", [Box(0.25, 0.5, 0.75, 1.0), Box(0.5, 0.75, 1.0, 1.0)])
    g = gt_map(a, 8, "clean")
    expected = np.zeros((8, 8))
    expected[4:8, 2:6] = 1
    expected[6:8, 4:8] = 1
    np.testing.assert_array_equal(g, expected)
    assert gt_map_x2(a, 8).dtype == np.uint8 and gt_map_x2(a, 8).max() == 2
    # any size, non-square
    g2 = gt_map(a, (10, 20), "clean")
    assert g2.shape == (10, 20) and g2[5:10, 5:15].min() == 1 and g2[:5].sum() == 0


def test_ssltie_rule_wraps_negative_indices():
    raw = ((-0.1, 0.0, 0.5, 0.5),)
    a = Annotation("c_000002", "vggss", [], raw_boxes=raw, raw_annotators=(0,))
    # int(-0.1*224) = -22: numpy slicing [-22:112] selects nothing
    assert gt_map(a, 224, "ssltie").sum() == 0
    # LVS and EZ-VSL clamp the negative coordinate to 0
    assert gt_map(a, 224, "lvs").sum() == 112 * 112
    assert gt_map(a, 224, "ezvsl").sum() == 112 * 112
    wide = Annotation("c_000003", "vggss", [], raw_boxes=((-0.01, 0.0, 1.0, 0.5),))
    # [-2:224] wraps to the last two columns
    assert gt_map(wide, 224, "ssltie").sum() == 2 * 112


def test_clean_rule_pixel_centres():
    # x0*W - 0.5 lands exactly on an integer: 0.0125*280 = 3.5 -> pixel 3 is inside
    a = Annotation("c_000004", "vggss", [Box(0.0125, 0.0, 0.5, 1.0)])
    assert box_pixel_ranges(a, 280, "clean") == [(0, 280, 3, 140)]
    tiny = Annotation("c_000005", "vggss", [Box(0.5, 0.5, 0.501, 0.501)])
    assert gt_map(tiny, 224, "clean").sum() == 0  # covers no pixel centre


# -- id lists -----------------------------------------------------------------------


def test_read_ids_formats(tmp_path, shared_metadata):
    assert len(read_ids(shared_metadata / "sspl" / "vggss_test_4692.csv")) == 4692
    ssl = read_ids(shared_metadata / "ssltie" / "test_vggss_4911.txt")
    assert len(ssl) == 4911 and not ssl[0].endswith(".jpg")
    flickr = read_ids(shared_metadata / "sspl" / "flickr_test249_in5k.csv")
    assert len(flickr) == 249 and flickr[0] == "10000130166"
    assert read_ids("a_000001,b_000002, a_000001") == ["a_000001", "b_000002"]
    with pytest.raises(InputError):
        read_ids(str(tmp_path / "missing.txt"))
    with pytest.raises(InputError):
        read_ids("ok_000001,../../etc")
