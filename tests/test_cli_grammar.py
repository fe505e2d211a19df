"""One CLI grammar across avprep and avmodels: examples and help everywhere, checked
choices, -j/--jobs, one --ids reader, all missing options at once, messages in CLI
terms, failures grouped by cause."""

from __future__ import annotations

import logging

import click
import pytest
from click.testing import CliRunner

from avmodels.cli import cli as avmodels_cli
from avprep.annotations.idlist import read_ids as annotations_read_ids
from avprep.cli import cli as avprep_cli
from avprep.errors import HostileIdError, InputError
from avprep.idspec import INLINE_NAME, is_inline, read_id_list
from avprep.manifest import ClipRecord
from avprep.recipes import clip_ids, load_clips
from avprep.stages.causes import cause_of, failure_hint, group_causes
from avprep.store.source import read_ids as store_read_ids


def _walk(group: click.Group, prefix: str):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield f"{prefix} {name}", cmd
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, f"{prefix} {name}")


COMMANDS = [*_walk(avprep_cli, "avprep"), *_walk(avmodels_cli, "avmodels")]


def test_every_command_has_an_example_and_help_on_every_option():
    names = [p for p, _ in COMMANDS]
    assert "avprep ingest" in names and "avmodels report" in names and len(names) > 25
    no_example = [p for p, c in COMMANDS if "example" not in (c.help or "").lower()]
    assert no_example == []
    no_help = [
        f"{p} {o.opts[-1]}"
        for p, c in COMMANDS
        for o in c.params
        if isinstance(o, click.Option) and not o.hidden and not o.help
    ]
    assert no_help == []


def test_jobs_is_j_everywhere():
    for path, cmd in COMMANDS:
        for o in cmd.params:
            if "--jobs" in o.opts:
                assert "-j" in o.opts, path
                assert isinstance(o.type, click.IntRange) and o.type.min == 1, path


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--ckpt", "x.pt", "--data", "d", "--annotations", "a", "--benchmark", "vgg"],
        ["train", "sspl", "--data", "d", "--out", "o", "--benchmark", "vgg"],
        ["baselines", "--annotations", "a", "--benchmark", "flickr", "--preset", "nope"],
        ["evaluate-maps", "--maps", "m", "--annotations", "a", "--benchmark", "vgg"],
        ["report", "e", "--benchmark", "vgg"],
    ],
)
def test_benchmark_and_preset_are_checked_choices(argv, tmp_path):
    for i, a in enumerate(argv):  # paths that exist, so only the choice can fail
        if a in ("x.pt", "d", "a", "m", "e"):
            p = tmp_path / a
            p.write_text("")
            argv[i] = str(p)
    res = CliRunner().invoke(avmodels_cli, argv)
    assert res.exit_code == 2, res.output
    assert "is not one of" in res.output
    assert "'vggss'" in res.output or "'default'" in res.output


def test_all_missing_options_at_once_with_an_example():
    res = CliRunner().invoke(avprep_cli, ["ingest"])
    assert res.exit_code == 2
    assert "missing required options: --from, --ids, --out" in res.output
    assert "example: avprep ingest --from" in res.output
    res = CliRunner().invoke(avmodels_cli, ["eval", "--data", "x"])
    assert "missing required options: --benchmark, --annotations" in res.output
    assert "example: avmodels eval --run" in res.output
    # nested groups too, and --help still wins
    res = CliRunner().invoke(avprep_cli, ["metadata", "check-leakage"])
    assert "--train, --test" in res.output and "example:" in res.output
    assert CliRunner().invoke(avprep_cli, ["ingest", "--help"]).exit_code == 0


def test_verbose_after_nested_subcommands():
    res = CliRunner().invoke(avprep_cli, ["metadata", "list", "-v"])
    assert res.exit_code == 0, res.output
    assert logging.getLogger().level == logging.INFO
    CliRunner().invoke(avprep_cli, ["metadata", "list"])
    assert logging.getLogger().level == logging.WARNING


def test_one_ids_reader(tmp_path):
    f = tmp_path / "ids.csv"
    f.write_bytes(b"zpWuikVorYg_000032,1\r\nabcdefghijk_000010,0\r\nzpWuikVorYg_000032,1\r\n")
    want = ["zpWuikVorYg_000032", "abcdefghijk_000010"]
    assert annotations_read_ids(f) == want
    assert store_read_ids(f) == (want, "ids.csv")
    assert clip_ids(f) == want
    inline = "zpWuikVorYg_000032, abcdefghijk_000010,zpWuikVorYg_000032"
    assert is_inline(inline) and not is_inline(str(f)) and not is_inline("vggss/test-5158")
    assert not is_inline("missing.txt")  # a list file that is not there: an error, not an id
    for reader in (annotations_read_ids, clip_ids, lambda s: store_read_ids(s)[0]):
        assert reader(inline) == want
    assert read_id_list(inline) == (want, INLINE_NAME)
    assert load_clips(inline)["clip_id"].tolist() == want  # download --ids a,b
    with pytest.raises(InputError, match="no such file"):
        clip_ids(str(tmp_path / "missing.txt"))
    with pytest.raises(HostileIdError):
        annotations_read_ids("ok_000001,..")


def test_messages_speak_cli(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("zpWuikVorYg_000032\n../etc/passwd\n")
    with pytest.raises(InputError) as err:
        load_clips(bad, dataset="vggsound")
    assert "--skip-bad" in str(err.value) and "skip_bad" not in str(err.value)
    from avmodels.metrics import evaluate
    from avprep.annotations.model import Annotation, Box

    anns = {"a": Annotation("a", "vggss", [Box(0, 0, 0.5, 0.5)]), "b": Annotation("b", "vggss", [])}
    import numpy as np

    with pytest.raises(InputError) as err:
        evaluate({"a": np.ones((4, 4), np.float32)}, anns)
    assert "--allow-missing" in str(err.value) and "allow_missing" not in str(err.value)


def test_failures_group_by_cause_and_hint():
    recs = [
        ClipRecord(
            f"{n}",
            "failed",
            error=f"HTTP Error 403: Forbidden http://www.flickr.com/videos/x/{n}/play/orig/s{n}ecret",
        )  # fmt: skip
        for n in ("2898394758", "1111111111", "2222222222")
    ]
    recs.append(
        ClipRecord(
            "zpWuikVorYg_000032", "unavailable", error="[youtube] zpWuikVorYg: Video unavailable"
        )
    )
    groups = group_causes(recs)
    assert groups[0] == ("HTTP Error 403: Forbidden <url>", 3, "2898394758")
    assert groups[1] == ("[youtube] <id>: Video unavailable", 1, "zpWuikVorYg_000032")
    assert cause_of("x 12345678901 y", "") == "x <id> y"
    hint = failure_hint(recs)
    assert hint and "--proxy" in hint and "--cookies" in hint
    assert failure_hint([*recs, ClipRecord("ok1", "ok")]) is None


LONG = ("download", "extract", "ingest", "pack-h5", "verify", "synth", "eval", "localize", "train")


def test_no_progress_on_every_long_command():
    by_name = {p.split(" ", 1)[1]: c for p, c in COMMANDS}
    for name in LONG:
        opts = {o for p in by_name[name].params for o in (*p.opts, *p.secondary_opts)}
        assert "--no-progress" in opts, name


def test_bars_count_shards_and_follow_the_terminal(monkeypatch):
    import io

    from avprep.runner import map_clips

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    def run(stream: io.StringIO) -> str:
        monkeypatch.setattr("sys.stderr", stream)
        recs = list(
            map_clips(lambda s: ClipRecord(s, "ok"), ["s0", "s1"], backend="serial", unit="shard")
        )
        assert [r.clip_id for r in recs] == ["s0", "s1"]
        return stream.getvalue()

    assert "shard/s" in run(Terminal())
    assert run(io.StringIO()) == ""  # a log file: no bar, no carriage returns


def test_json_is_an_output_flag_and_format_names_the_list_format():
    for path, cmd in COMMANDS:
        for o in cmd.params:
            if "--json" in o.opts and not getattr(o, "is_flag", False):
                # an input given as --json survives only as the old name of --in
                assert o.opts[0] == "--in", path
    by_name = {p.split(" ", 1)[1]: c for p, c in COMMANDS}
    fmt = next(o for o in by_name["download"].params if "--format" in o.opts)
    assert "--id-format" in fmt.opts  # the old spelling still works
