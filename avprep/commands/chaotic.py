"""``avprep chaotic-world``: the Chaotic World (ICME 2024 MMVRAC Track 4) annotations."""

from __future__ import annotations

import json

import click

from avprep.annotations.chaotic_ssl import DUPLICATE_FRAMES


@click.group("chaotic-world")
def chaotic_world() -> None:
    """Chaotic World sound-source annotations (docs/chaotic-world.md).

    \b
    Example:
      avprep chaotic-world prepare --root SSL_ssl_format --out cw/
      avprep extract --in videos/ --out cw/extract-test --profile chaotic \\
          --times cw/times-test.csv
    """


@chaotic_world.command("prepare")
@click.option(
    "--root",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="The official SSL_ssl_format folder (annotation/group/*.csv, train_ssl.txt, test_ssl.txt).",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output.")
@click.option(
    "--duplicate-frames",
    default="merge",
    show_default=True,
    type=click.Choice(DUPLICATE_FRAMES),
    help="A frame named by several rows: union of their boxes, or the last row (the fork).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def prepare(root: str, out_dir: str, duplicate_frames: str, as_json: bool) -> None:
    """Clip table, --times files, id lists, test JSON and a leakage report.

    Writes clips.csv, times-{train,test}.csv, {train,test}_ids.txt,
    ChaoticWorld_test.json and summary.json into --out.

    \b
    Example:
      avprep chaotic-world prepare --root SSL_ssl_format --out cw/
    """
    from avprep.annotations.chaotic_prepare import prepare as run

    s = run(root, out_dir, duplicate_frames=duplicate_frames)
    if as_json:
        click.echo(json.dumps(s, indent=1))
        return
    leak = s["leakage"]
    click.echo(f"chaotic-world: {out_dir}")
    click.echo(f"  videos            train {s['train_videos']:>6}   test {s['test_videos']:>6}")
    click.echo(f"  annotated frames  train {s['train_clips']:>6}   test {s['test_clips']:>6}")
    click.echo(
        f"  duplicate frames  {s['duplicate_frame_count']} ({s['duplicate_rows']} extra rows; "
        f"rule: {duplicate_frames})"
    )
    click.echo(f"  boxes beyond a row's first (the fork drops them): {s['boxes_beyond_first']}")
    click.echo(
        f"  leakage           {leak['frames']} frames, {leak['videos']} videos on both sides"
    )
    for vid in leak["video_ids"][:10]:
        click.echo(f"    {vid}")


@chaotic_world.command("json")
@click.option(
    "--in",
    "in_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A Chaotic World test JSON (e.g. the fork's ChaoticWorld_test.json).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The JSON to write, one entry per frame.",
)
@click.option(
    "--duplicate-frames",
    default="last",
    show_default=True,
    type=click.Choice(DUPLICATE_FRAMES),
    help="last: what the fork's gt dict keeps; merge: one entry per distinct box.",
)
def dedupe_json(in_path: str, out_path: str, duplicate_frames: str) -> None:
    """Resolve the duplicate frames of a test JSON (e.g. the fork's ChaoticWorld_test.json).

    The fork's JSON has one entry per annotation row; its evaluation keeps the
    last entry of a frame. `avmodels eval --benchmark chaotic` merges entries,
    so give it this command's output to score the fork's way.

    \b
    Example:
      avprep chaotic-world json --in ChaoticWorld_test.json --out cw_test_last.json
    """
    from avprep.annotations.chaotic import read_chaotic_json
    from avprep.atomic import write_text

    anns = read_chaotic_json(in_path, duplicate_frames=duplicate_frames, bad_boxes="keep")
    out = []
    dups = 0
    for cid, a in anns.items():
        dups += any(d.kind == "duplicate_entry" for d in a.defects)
        for box in dict.fromkeys(a.raw_boxes):
            out.append({"file": cid, "class": a.label, "bbox": [_num(v) for v in box]})
    write_text(out_path, json.dumps(out, indent=1) + "\n")
    click.echo(f"{len(anns)} frames, {dups} listed more than once ({duplicate_frames}); {out_path}")


def _num(v: float) -> int | float:
    return int(v) if float(v).is_integer() else float(v)
