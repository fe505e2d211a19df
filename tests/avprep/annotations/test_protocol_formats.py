"""The protocol metadata formats (silent pairs, SSLalignment JSON, AVSBench csv) and registry names."""

from __future__ import annotations

import json

import pytest

from avprep import catalog
from avprep.errors import InputError
from avprep.recipes import load_clips
from tests.protocol_data import silent_csv


def test_silent_pairs_csv(tmp_path):
    p = silent_csv(tmp_path / "flickr_test_plus_silent.csv",
                   [("10000130166", "10437048305"), ("10007936344", "10079676496")])  # fmt: skip
    df = load_clips(p, fmt="silent-pairs-csv", dataset="flickr")
    assert df.clip_id.tolist() == ["10000130166", "10007936344"]
    assert set(df.label) == {"non-sounding"} and set(df.split) == {"test"}
    bad = tmp_path / "bad.csv"
    bad.write_text("video,audio,label\n1,2,sounding\n")
    with pytest.raises(InputError, match="not 'non-sounding'"):
        load_clips(bad, fmt="silent-pairs-csv", dataset="flickr")


def test_sslalign_json_keeps_ids_verbatim_and_refuses_unsafe_ones(tmp_path):
    rows = [
        {"image": "/d/s4/test/helicopter/0d9u2CymIxc/0d9u2CymIxc_1.png", "audio": "/a.wav",
         "gt_box": [21.0, 72.0, 196.0, 140.0]},
        {"image": "/d/ms3/rq5RDUm2Hnk_1/rq5RDUm2Hnk_1.mp4_1.png", "audio": "/b.wav",
         "gt_box": "/d/gt_masks/rq5RDUm2Hnk_1_1.png", "offset": 1},
        {"image": "/d/babylaughter_electric grinder grinding_baby.jpg", "audio": "/c.wav",
         "gt_box": [0.0, 0.0, 1.0, 1.0]},
    ]  # fmt: skip
    p = tmp_path / "x.json"
    p.write_text(json.dumps(rows))
    with pytest.raises(InputError, match="unsafe clip id"):
        load_clips(p, fmt="sslalign-json", dataset="avsbench")
    df = load_clips(p, fmt="sslalign-json", dataset="avsbench", skip_bad=True)
    # not turned into a VGGSound id (<ytid>_<start6>): kept as written
    assert df.clip_id.tolist() == ["0d9u2CymIxc_1", "rq5RDUm2Hnk_1.mp4_1"]


def test_avsbench_csv(tmp_path):
    p = tmp_path / "avs1_ms3_test.csv"
    p.write_text("0WxgIKuetYI_0_1,man\n0WxgIKuetYI_0_2,man")
    df = load_clips(p, fmt="avsbench-csv", dataset="avsbench")
    assert df.clip_id.tolist() == ["0WxgIKuetYI_0_1", "0WxgIKuetYI_0_2"] and set(df.label) == {
        "man"
    }


def test_registry_protocol_section():
    e = catalog.get_entry("sslalign/flickr-test-plus-silent")
    assert e.name == "slavc/flickr-test-plus-silent" and e.clips == 250 and len(e.urls) == 3
    assert catalog.get_entry("vggss/test-heard").name == "ezvsl/vggss-heard-test"
    assert catalog.get_entry("vggss/test-unheard").clips == 2575
    for name in ("sslalign/is3-bbox", "sslalign/s4-seg", "sslalign/ms3-box",
                 "sslalign/vpo-ms-bbox", "acl-ssl/avs1-s4-test", "sslalign/vggss-test-4655"):  # fmt: skip
        ent = catalog.get_entry(name)
        assert ent.sha256 and ent.bytes and ent.clips, name
    assert "no public code" in catalog.get_entry("sslalign/vpo-ss-bbox").description
