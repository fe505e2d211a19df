"""The documented command lines, checked against the CLIs so the docs cannot drift.

Every ``avprep``/``avmodels`` line in a code block of README.md and docs/*.md
is parsed by the real command (the subcommand exists, every option exists,
every choice is valid). The lines that can run offline run, on generated data
(SynthAV; the clip count is cut to keep the test short); every other line is
listed with the reason it cannot run here (network, or a dataset/model that
only a real download or training makes).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from avmodels.cli import cli as avmodels_cli
from avprep.cli import cli as avprep_cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINE = re.compile(r"^(?:\$ )?((?:torchrun .*?-m )?(?:avprep|avmodels)(?:\s.*)?)$")

#: Lines run on generated data, in order, with the substitutions that keep them short.
OFFLINE = {
    "avprep metadata list": {},
    "avprep metadata show vggss/test-5158": {},
    "avprep metadata show vggsound/train-144k": {},
    "avmodels methods": {},
    "avprep run pipelines/flickr-10k-sspl.yaml --dry-run": {},
    "avprep synth --out synthav/ --clips 300 --jobs 2": {"--clips 300": "--clips 10"},
    "avprep extract --in synthav/videos --out extracted/ --profile sspl --jobs 2": {},
    "avprep pack-h5 --in extracted/ --out h5/train --split train --ids synthav/splits/train.txt": {},
    "avprep pack-h5 --in extracted/ --out h5/test --split test --ids synthav/splits/test.txt": {},
    "avmodels baselines --annotations synthav/annotations/vggss.json --benchmark vggss "
    "--ids synthav/splits/test.txt": {},
}
NETWORK = ("avprep download", "avprep metadata fetch", "avmodels weights fetch")


def documented() -> list[tuple[str, str]]:
    """``(where, command line)`` of every documented avprep/avmodels call."""
    out = []
    for doc in DOCS:
        block, buf, start = False, "", 0
        for n, raw in enumerate(doc.read_text().splitlines(), 1):
            s = raw.strip()
            if s.startswith("```"):
                block = not block
                continue
            if not block:
                continue
            if buf:
                buf += " " + s.rstrip("\\").strip()
            else:
                m = LINE.match(s)
                if not m:
                    continue
                buf, start = m.group(1).rstrip("\\").strip(), n
            if not s.endswith("\\"):
                line = re.sub(r"\s+#.*$", "", buf).strip()
                out.append((f"{doc.name}:{start}", " ".join(line.split())))
                buf = ""
    return out


def _argv(line: str) -> tuple[click.Group, list[str]]:
    words = shlex.split(line)
    if words[0] == "torchrun":
        words = words[words.index("-m") + 1 :]
    return (avprep_cli if words[0] == "avprep" else avmodels_cli), words[1:]


def check_parses(line: str) -> None:
    """The subcommand exists, every option exists and every choice value is valid."""
    group, args = _argv(line)
    cmd: click.Command = group
    ctx = click.Context(group)
    while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
        sub = cmd.get_command(ctx, args[0])
        assert sub is not None, f"no command {args[0]!r}"
        cmd, args = sub, args[1:]
        ctx = click.Context(cmd, parent=ctx)
    parser = cmd.make_parser(ctx)
    values, _, _ = parser.parse_args(list(args))  # unknown options raise NoSuchOption
    for p in cmd.params:
        if isinstance(p.type, click.Choice) and values.get(p.name) is not None:
            given = values[p.name]
            for v in given if isinstance(given, (list, tuple)) else [given]:
                assert v in p.type.choices, f"{p.opts[-1]} {v!r} is not one of {p.type.choices}"


def why_not_offline(line: str) -> str | None:
    if line in OFFLINE:
        return None
    if line.startswith(NETWORK):
        return "needs the network (a real download)"
    if line.startswith("torchrun"):
        return "needs several processes/GPUs and a real dataset"
    return "needs a real dataset, checkpoint or video that only a download or training makes"


def test_docs_have_command_lines():
    lines = documented()
    assert len(lines) > 60
    where = {w.split(":")[0] for w, _ in lines}
    assert {"README.md", "training.md", "download.md"} <= where


@pytest.mark.parametrize("where, line", documented(), ids=lambda x: x if ":" in str(x) else "")
def test_documented_line_parses(where, line):
    if "[" in line and "]" in line:
        pytest.skip(f"{where}: a synopsis, not a command line")
    try:
        check_parses(line)
    except (click.UsageError, AssertionError) as exc:
        pytest.fail(f"{where}: `{line}` does not match the CLI: {exc}")


def test_offline_lines_are_documented_and_the_rest_have_reasons():
    lines = {line for _, line in documented()}
    missing = [c for c in OFFLINE if c not in lines]
    assert missing == [], "offline lines no longer in the docs (update OFFLINE)"
    reasons = {line: why_not_offline(line) for line in lines}
    assert all(r for line, r in reasons.items() if line not in OFFLINE)


@pytest.mark.slow
def test_offline_documented_lines_run_on_generated_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AVPREP_HOME", str(tmp_path / "home"))
    (tmp_path / "pipelines").symlink_to(ROOT / "pipelines")
    for line, subs in OFFLINE.items():
        for old, new in subs.items():
            line = line.replace(old, new)
        group, args = _argv(line)
        res = CliRunner().invoke(group, args, catch_exceptions=False)
        assert res.exit_code == 0, f"`{line}`:\n{res.output[-2000:]}"
    assert (tmp_path / "h5" / "train" / "index.json").is_file()
    assert (tmp_path / "h5" / "test" / "index.json").is_file()
