"""Recipes: every id-list format -> the clip table; real lists and hand-made fixtures."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from avprep import catalog
from avprep.cli import cli
from avprep.errors import ConfigError, InputError, UnknownNameError
from avprep.recipes import COLUMNS, FORMATS, clip_ids, detect_format, load_clips
from avprep.recipes.flickr import attach_soundnet_urls

VENV_BIN = Path(sys.executable).parent

# ---------------------------------------------------------------- real lists


def readme_rows(shared: Path) -> list[dict]:
    """The table of ../shared/metadata/README.md: file, repository, path, bytes, lines, sha256."""
    rows = []
    for line in (shared / "README.md").read_text().splitlines():
        m = re.match(
            r"^\| ([a-z]+/\S+) \| (\S+) (\S+) \| (\d+) \| (\d+) \| ([0-9a-f]{64}) \|", line
        )
        if m:
            file, repo, path, size, lines, sha = m.groups()
            rows.append(
                dict(file=file, repo=repo, path=path, bytes=int(size), lines=int(lines), sha=sha)
            )
    return rows


def registry_entry_for(repo: str, path: str) -> catalog.Entry:
    suffix = f"/{path}"
    for e in catalog.list_entries():
        for url in e.urls:
            if url.startswith(f"https://raw.githubusercontent.com/{repo}/") and url.endswith(
                suffix
            ):
                return e
    raise AssertionError(f"no registry entry for {repo} {path}")


@pytest.fixture(scope="module")
def real_tables(shared_metadata):
    """Each shared file parsed once (auto-detected format) with its README row and entry."""
    out = {}
    for row in readme_rows(shared_metadata):
        df = load_clips(shared_metadata / row["file"])
        out[row["file"]] = (row, registry_entry_for(row["repo"], row["path"]), df)
    assert len(out) == 24
    return out


@pytest.mark.slow
def test_every_shared_file_parses_to_its_line_count(real_tables):
    for file, (row, entry, df) in real_tables.items():
        assert list(df.columns) == list(COLUMNS), file
        # every line (JSON: every item) is one clip: nothing malformed, no duplicates
        lines = (
            len(json.loads(Path(df.attrs["path"]).read_text()))
            if entry.format.endswith("json")
            else row["lines"]
        )
        assert len(df) == lines == entry.clips, file
        assert df.attrs["skipped"] == 0 and df.attrs["duplicates"] == 0, file
        # auto-detection agrees with the format the registry declares
        assert df.attrs["format"] == entry.format, file
        assert set(df["source"]) == {entry.corpus}, file
        assert df["clip_id"].is_unique
        assert not df["clip_id"].str.contains(r"[\r\n\s/.]").any(), file


@pytest.mark.slow  # ~2-4 s: kept out of make test-fast
def test_vggss_json_real(real_tables):
    _, _, df = real_tables["sspl/vggss_test_5158.json"]
    assert len(df) == 5158
    assert df["label"].nunique() == 221
    assert set(df["split"]) == {"test"}
    row = df.set_index("clip_id").loc["zpWuikVorYg_000032"]
    assert (row["start"], row["end"], row["label"]) == (32.0, 42.0, "elk bugling")
    assert row["url"] == "https://www.youtube.com/watch?v=zpWuikVorYg"
    # the CRLF id list of the same test set names exactly the same clips
    _, _, ids = real_tables["ezvsl/vggss_test.csv"]
    assert set(ids["clip_id"]) == set(df["clip_id"])
    for subset in ("sspl/vggss_test_4692.csv", "ssltie/test_vggss_4911.txt"):
        assert set(real_tables[subset][2]["clip_id"]) <= set(df["clip_id"]), subset


def test_flickr_test_lists_real(real_tables):
    _, _, sspl = real_tables["sspl/flickr_test249_in5k.csv"]
    raw = (Path(sspl.attrs["path"])).read_bytes()
    assert b"\r\n" in raw  # the file really is CRLF; ids must come out clean
    assert len(sspl) == 249 and sspl["clip_id"].str.fullmatch(r"\d+").all()
    assert sspl["url"].isna().all() and sspl["start"].isna().all()
    # SSL-TIE's "<id>.jpg" list and Attention's "<id>.png" list name the same clips (+1)
    ssltie = set(real_tables["ssltie/test_flickr_250.txt"][2]["clip_id"])
    attention = set(real_tables["attention/test_list.txt"][2]["clip_id"])
    assert ssltie == set(sspl["clip_id"])
    assert set(sspl["clip_id"]) < attention and len(attention - set(sspl["clip_id"])) == 1
    # SSL-TIE's videos/a/b/c/<id>.mp4 paths become bare ids
    _, _, paths = real_tables["ssltie/train_flickr_10k.txt"]
    first = Path(paths.attrs["path"]).read_text().splitlines()[0]
    assert first.startswith("videos/") and first.endswith(f"/{paths['clip_id'][0]}.mp4")


# ------------------------------------------------------------ hand-made lists


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


SOUNDNET = (
    "# SoundNet urls_public.txt sample\n"
    "http://www.flickr.com/videos/27606531@N02/2898394758/play/orig/5b222e6773\n"
    "\n"
    "http://www.flickr.com/videos/47762553@N00/9419455509/play/orig/8461e78d0d\n"
    "http://example.org/videos/x/play/orig/abc\n"  # no id segment (a mirror keeps one)
    "http://www.flickr.com/videos/27606531@N02/2898394758/play/orig/5b222e6773\n"
)


def test_soundnet_urls(tmp_path):
    p = write(tmp_path, "urls_public.txt", SOUNDNET)
    with pytest.raises(
        InputError, match=r"(?s)urls_public.txt: 1 malformed entry.*line 5: not a SoundNet"
    ):
        load_clips(p)
    df = load_clips(p, skip_bad=True)
    assert df.attrs["format"] == "soundnet-urls"
    assert df["clip_id"].tolist() == ["2898394758", "9419455509"]  # id = path segment 5
    assert df["url"][0] == SOUNDNET.splitlines()[1]
    assert set(df["source"]) == {"flickr"}
    assert df.attrs["skipped"] == 1 and df.attrs["bad_lines"][0][0] == 5
    assert df.attrs["duplicates"] == 1


VGGSOUND_CSV = (
    "---g-f_I2yQ,1,people marching,test\r\n"
    '-0BIyqJj9ZU,30,"female speech, woman speaking",train\r\n'
    '-0jeONf82dE,21,"dog barking",train\r\n'
    '-0BIyqJj9ZU,30,"female speech, woman speaking",train\r\n'
    "\r\n"
    '-1_abcdefgh,10,"engine accelerating, revving, vroom",test\r\n'
)


def test_vggsound_csv_quoted_commas_and_split(tmp_path):
    p = write(tmp_path, "vggsound.csv", VGGSOUND_CSV)
    df = load_clips(p)
    assert df.attrs["format"] == "vggsound-csv"
    assert df["clip_id"].tolist() == [
        "---g-f_I2yQ_000001",
        "-0BIyqJj9ZU_000030",
        "-0jeONf82dE_000021",
        "-1_abcdefgh_000010",
    ]
    assert df["label"][1] == "female speech, woman speaking"
    assert df["label"][3] == "engine accelerating, revving, vroom"
    assert df.attrs["duplicates"] == 1
    assert (df["end"] - df["start"] == 10.0).all()
    train = load_clips(p, split="train")
    assert train["clip_id"].tolist() == ["-0BIyqJj9ZU_000030", "-0jeONf82dE_000021"]
    assert train.attrs["filtered"] == 2
    test = load_clips(p, split="test")
    assert set(test["split"]) == {"test"} and len(test) == 2


def test_vggsound_csv_bad_rows_and_header(tmp_path):
    text = (
        "# YouTube ID,start seconds,label,split\n"
        "abcdefghijk,10,ok,train\n"
        "abcdefghijk,x,bad start,train\n"
        "short,10,bad id,train\n"
        "abcdefghijk,20,bad split,val\n"
        'abcdefghijk,30,"missing split"\n'
    )
    p = write(tmp_path, "v.csv", text)
    with pytest.raises(InputError) as exc:
        load_clips(p, fmt="vggsound-csv")
    msg = str(exc.value)
    assert "4 malformed entries" in msg
    for line in ("line 3: start seconds", "line 4: not a YouTube id", "line 5: split", "line 6"):
        assert line in msg
    df = load_clips(p, fmt="vggsound-csv", skip_bad=True)
    assert df["clip_id"].tolist() == ["abcdefghijk_000010"]
    assert [n for n, _ in df.attrs["bad_lines"]] == [3, 4, 5, 6]
    header = write(tmp_path, "h.csv", "ytid,start_seconds,label,split\nabcdefghijk,10,ok,train\n")
    assert load_clips(header, fmt="vggsound-csv")["clip_id"].tolist() == ["abcdefghijk_000010"]


CHAOTIC = [
    {"file": "ABCDEFGH_000120", "class": "crowd", "bbox": [10, 20, 110, 90]},
    {"file": "ABCDEFGH_000240", "class": "siren", "bbox": [0, 0, 320, 180]},
    {"file": "ZYXWVUTS_000003", "class": "crowd", "bbox": [5.5, 6, 7, 8]},
    {"file": "../etc_000001", "class": "x", "bbox": [1, 2, 3, 4]},
    {"file": "QQQQQQQQ_000001", "class": "x", "bbox": [[1, 2, 3, 4]]},
]


def test_chaotic_world_json(tmp_path):
    p = write(tmp_path, "chaotic_test.json", json.dumps(CHAOTIC))
    assert detect_format(p.read_text()) == "chaotic-json"
    with pytest.raises(
        InputError, match=r"(?s)item 4: not a Chaotic World clip id.*item 5: 'bbox'"
    ):
        load_clips(p)
    df = load_clips(p, skip_bad=True)
    assert df["clip_id"].tolist() == ["ABCDEFGH_000120", "ABCDEFGH_000240", "ZYXWVUTS_000003"]
    assert set(df["source"]) == {"chaotic"} and set(df["split"]) == {"test"}
    assert df["label"].tolist() == ["crowd", "siren", "crowd"]
    assert df["url"].isna().all()


def test_vggss_json_items(tmp_path):
    items = [
        {"file": "zpWuikVorYg_000032", "class": "elk bugling", "bbox": [[0.4, 0.25, 0.6, 0.75]]},
        {"file": "not an id", "class": "x", "bbox": [[0, 0, 1, 1]]},
        ["not", "an", "object"],
    ]
    p = write(tmp_path, "vggss.json", json.dumps(items))
    assert detect_format(p.read_text()) == "vggss-json"
    df = load_clips(p, skip_bad=True)
    assert df["clip_id"].tolist() == ["zpWuikVorYg_000032"]
    assert [n for n, _ in df.attrs["bad_lines"]] == [2, 3]
    broken = write(tmp_path, "broken.json", '[{"file": "zpWuikVorYg_000032",\n "class": }]')
    with pytest.raises(InputError, match=r"(?s)broken.json: .*line 2"):
        load_clips(broken)
    with pytest.raises(InputError, match="expected a JSON list"):
        load_clips(write(tmp_path, "obj.json", '{"file": 1}'), fmt="vggss-json")


def test_url_list(tmp_path):
    text = (
        "https://media.example.org/set/clip_01.mp4\n"
        "http://media.example.org/a/b/clip-02.webm?token=1\n"
        "https://www.youtube.com/watch?v=zpWuikVorYg&t=32\n"
        "https://youtu.be/gEvCUcZ6w88\n"
        "http://www.flickr.com/videos/27606531@N02/2898394758/play/orig/5b222e6773\n"
        "file:///etc/passwd\n"
        "https://media.example.org/%2E%2E%2Fescape%2Fx.mp4\n"
        "https://media.example.org/$(reboot).mp4\n"
        "https://user:secret@media.example.org/has space.mp4\n"
        "https://media.example.org/other/clip_01.mp4\n"
        "https://media.example.org/\n"
    )
    p = write(tmp_path, "urls.txt", text)
    assert detect_format(text) == "url-list"
    with pytest.raises(InputError) as exc:
        load_clips(p)
    msg = str(exc.value)
    assert "6 malformed entries" in msg
    assert "secret" not in msg  # credentials never reach messages
    df = load_clips(p, skip_bad=True)
    assert df["clip_id"].tolist() == [
        "clip_01",
        "clip-02",
        "zpWuikVorYg",
        "gEvCUcZ6w88",
        "2898394758",
    ]
    assert df["source"].tolist() == ["url", "url", "url", "url", "flickr"]
    assert df["url"][1] == "http://media.example.org/a/b/clip-02.webm?token=1"
    assert [n for n, _ in df.attrs["bad_lines"]] == [6, 7, 8, 9, 10, 11]
    reasons = dict(df.attrs["bad_lines"])
    assert "only http(s)" in reasons[6]
    assert "already stands for another URL" in reasons[10]  # same stem, different file


@pytest.mark.parametrize(
    "hostile",
    ["../../etc/passwd", "$(id)", "a;rm -rf ~", "a b", "`reboot`", "..", "x|y", "-" * 200],
)
def test_hostile_ids_are_malformed_lines(tmp_path, hostile):
    p = write(tmp_path, "ids.txt", f"good_id_1\n\n# comment\n{hostile}\ngood_id_2\n")
    with pytest.raises(InputError, match=r"(?s)ids.txt: 1 malformed entry.*line 4: "):
        load_clips(p, fmt="ids")
    df = load_clips(p, fmt="ids", skip_bad=True)
    assert df["clip_id"].tolist() == ["good_id_1", "good_id_2"]
    assert df.attrs["skipped"] == 1 and df.attrs["bad_lines"][0][0] == 4


def test_comments_blank_lines_duplicates_crlf_bom(tmp_path):
    text = "\ufeff# header comment\r\n\r\n123\r\n  456  \r\n123\r\n#789\r\n\r\n"
    df = load_clips(write(tmp_path, "ids.csv", text))
    assert df.attrs["format"] == "flickr-ids"
    assert df["clip_id"].tolist() == ["123", "456"]
    assert df.attrs["duplicates"] == 1


def test_file_names_paths_and_htf_ids_normalise_to_clip_ids(tmp_path):
    wav = load_clips(write(tmp_path, "a.txt", "5692223126.wav\n8374823878.WAV\n"))
    assert wav.attrs["format"] == "file-names" and wav["clip_id"].tolist() == [
        "5692223126",
        "8374823878",
    ]
    paths = load_clips(write(tmp_path, "b.txt", "videos/0/0/0/2615133000.mp4\n/abs/x/12.mp4\n"))
    assert paths.attrs["format"] == "file-paths"
    assert paths["clip_id"].tolist() == ["2615133000", "12"]
    with pytest.raises(InputError, match=r"line 2: path climbs out"):
        load_clips(write(tmp_path, "c.txt", "videos/1.mp4\nvideos/../../2.mp4\n"))
    htf = load_clips(write(tmp_path, "d.txt", "zpWuikVorYg_32000_42000\nzpWuikVorYg_000032\n"))
    assert htf["clip_id"].tolist() == ["zpWuikVorYg_000032"] and htf.attrs["duplicates"] == 1
    with pytest.raises(InputError, match="media extension"):
        load_clips(write(tmp_path, "e.txt", "123.jpg\n456.exe\n"), fmt="file-names")


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("10000130166\n10007936344\n", "flickr-ids"),
        ("10000130166,202\r\n10007936344,0\r\n", "flickr-id-csv"),
        ("zpWuikVorYg_000032\r\ngEvCUcZ6w88_000030\r\n", "vggsound-ids"),
        ("a.jpg\n10000130166.jpg\n10007936344.jpg\n", "file-names"),
        ("videos2/9/9/1/2399997071.mp4\n", "file-paths"),
        (VGGSOUND_CSV, "vggsound-csv"),
        (SOUNDNET, "soundnet-urls"),
        ("https://x.org/a.mp4\n", "url-list"),
        ("synth_0001\nsynth_0002\n", "ids"),
        ("123\nzpWuikVorYg_000032\n", "ids"),
        ('[{"file": "zpWuikVorYg_000032", "bbox": [[0, 0, 1, 1]]}]', "vggss-json"),
        ('[{"file": "ABCDEFGH_000001", "bbox": [0, 0, 1, 1]}]', "chaotic-json"),
    ],
)
def test_detect_format(text, fmt):
    assert detect_format(text) == fmt


def test_dataset_and_format_options(tmp_path):
    p = write(tmp_path, "ids.txt", "123\n456\n")
    with pytest.raises(InputError, match=r"(?s)2 malformed entries.*not a VGGSound clip id"):
        load_clips(p, dataset="vggsound")
    with pytest.raises(ConfigError, match="does not describe dataset"):
        load_clips(p, fmt="vggss-json", dataset="flickr")
    with pytest.raises(UnknownNameError, match="valid: .*flickr-ids"):
        load_clips(p, fmt="nope")
    with pytest.raises(UnknownNameError, match="unknown dataset"):
        load_clips(p, dataset="audioset")
    assert load_clips(p, dataset="flickr")["clip_id"].tolist() == ["123", "456"]
    labelled = load_clips(p, split="train")
    assert set(labelled["split"]) == {"train"}
    assert clip_ids(p) == ["123", "456"]
    assert len(load_clips(write(tmp_path, "empty.txt", "# nothing\n\n"))) == 0


def test_unreadable_inputs(tmp_path):
    with pytest.raises(InputError, match="no such file, and not a registry name"):
        load_clips(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="is a folder"):
        load_clips(tmp_path)
    with pytest.raises(InputError, match=r"line 2: not UTF-8"):
        load_clips(write(tmp_path, "latin.txt", b"123\n\xe9t\xe9\n"))
    with pytest.raises(InputError, match="binary data"):
        load_clips(write(tmp_path, "bin.txt", b"\x00\x01\x02"))


def test_attach_soundnet_urls(tmp_path):
    urls = load_clips(write(tmp_path, "urls_public.txt", SOUNDNET), skip_bad=True)
    ids = load_clips(write(tmp_path, "ids.txt", "9419455509\n111\n"))
    out = attach_soundnet_urls(ids, urls)
    assert out["url"].tolist() == [SOUNDNET.splitlines()[3], None]
    assert ids["url"].isna().all()  # the input is not modified


# a VGGSound clip spelled four ways by four papers is one clip id
_ytid = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
    min_size=11,
    max_size=11,
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(_ytid, st.integers(0, 99999)), min_size=1, max_size=20))
def test_vggsound_spellings_agree(tmp_path_factory, clips):
    folder = tmp_path_factory.mktemp("spell")
    expected = list(dict.fromkeys(f"{y}_{s:06d}" for y, s in clips))
    spellings = {
        "ids.txt": [f"{y}_{s:06d}" for y, s in clips],
        "jpg.txt": [f"{y}_{s:06d}.jpg" for y, s in clips],
        "paths.txt": [f"frames/{y[0]}/{y}_{s:06d}.mp4" for y, s in clips],
        "htf.txt": [f"{y}_{s * 1000}_{(s + 10) * 1000}" for y, s in clips],
    }
    for name, lines in spellings.items():
        p = folder / name
        p.write_text("\n".join(lines) + "\n")
        assert clip_ids(p, dataset="vggsound") == expected, name


def test_formats_registry_documents_every_format():
    for name, spec in FORMATS.items():
        assert spec.description and spec.example and spec.datasets, name


# ----------------------------------------------------------------------- CLI


def test_cli_parse_summary_and_out(tmp_path):
    p = write(tmp_path, "vggsound.csv", VGGSOUND_CSV)
    out = tmp_path / "train.csv"
    res = CliRunner().invoke(
        cli, ["metadata", "parse", str(p), "--split", "train", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "format      vggsound-csv" in res.output
    assert "clips       2" in res.output and "duplicates  1 dropped" in res.output
    table = pd.read_csv(out)
    assert table["clip_id"].tolist() == ["-0BIyqJj9ZU_000030", "-0jeONf82dE_000021"]
    ids = tmp_path / "ids.txt"
    res = CliRunner().invoke(cli, ["metadata", "parse", str(p), "--out", str(ids)])
    assert ids.read_text().splitlines()[0] == "---g-f_I2yQ_000001"
    assert not math.isnan(table["start"][0])


def test_cli_parse_errors_are_readable(tmp_path):
    p = write(tmp_path, "ids.txt", "123\n../../etc/passwd\n456\n$(id)\n")
    proc = subprocess.run(
        [VENV_BIN / "avprep", "metadata", "parse", str(p), "--format", "ids"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "ids.txt: 2 malformed entries" in proc.stderr
    assert "line 2:" in proc.stderr and "line 4:" in proc.stderr
    proc = subprocess.run(
        [VENV_BIN / "avprep", "metadata", "parse", str(p), "--format", "ids", "--skip-bad"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "clips       2" in proc.stdout and "skipped     2 malformed" in proc.stdout
