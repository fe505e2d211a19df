"""``avprep download``: fetch the clips of an id list into one folder (see docs/download.md)."""

from __future__ import annotations

import click

from avprep.clikit import backend_options
from avprep.recipes.vggsound import CSV_SPLITS

ID_DATASETS = ("vggsound", "flickr", "urls")


@click.command()
@click.option(
    "--ids",
    required=True,
    metavar="FILE|NAME",
    help="Id list (any format `avprep metadata` parses, vggsound.csv too) or a registry "
    "name such as vggsound/train-144k.",
)
@click.option(
    "--dataset",
    type=click.Choice(ID_DATASETS, case_sensitive=False),
    default=None,
    help="What the ids are, when the list alone does not say.",
)
@click.option(
    "--split",
    type=click.Choice(CSV_SPLITS, case_sensitive=False),
    default=None,
    help="Keep only this split (vggsound.csv).",
)
@click.option(
    "--format",
    "--id-format",
    "id_format",
    default="auto",
    show_default=True,
    help="Format of --ids, as in `avprep metadata parse --format` (--id-format: old name).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder: <clip_id>.<ext> files + manifest.jsonl.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1),
    default=4,
    show_default=True,
    help="Parallel downloads (network-bound: more than the CPU count is fine).",
)
@backend_options()
@click.option(
    "--section",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Length fetched from a clip's start time [default: the clip's end, else 10 s].",
)
@click.option(
    "--exact-cuts",
    is_flag=True,
    help="Re-encode so a section starts exactly at its start time (slower; default cuts "
    "at the keyframe before it).",
)
@click.option(
    "--rate-limit",
    default=None,
    metavar="N[/min|/s|/h]",
    help="Attempts started per minute, shared by all workers (e.g. 30/min).",
)
@click.option("--retries", default=3, show_default=True, help="Retries of a failed clip.")
@click.option(
    "--backoff",
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="First retry delay; doubles each retry (with jitter), at most 60 s.",
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Socket timeout: a server silent this long fails the attempt.",
)
@click.option(
    "--cookies",
    default=None,
    metavar="FILE",
    help="Netscape cookies.txt for YouTube (never logged or recorded).",
)
@click.option(
    "--proxy",
    default=None,
    metavar="URL",
    envvar="AVPREP_PROXY",
    show_envvar=True,
    help="Proxy URL, e.g. socks5://user:pass@host:1080 (never logged or recorded).",
)
@click.option(
    "--video-format",
    default=None,
    metavar="SELECTOR",
    help="yt-dlp format selector [default: at most 480p, video+audio].",
)
@click.option(
    "--urls-from",
    default=None,
    metavar="FILE|NAME",
    help="SoundNet URL list giving bare Flickr ids their download URLs "
    "(e.g. soundnet/urls-public).",
)
@click.option(
    "--retry-failed", is_flag=True, help="Retry clips recorded failed/unavailable/skipped."
)
@click.option("--skip-bad", is_flag=True, help="Skip malformed or unsafe ids instead of failing.")
@click.option("--limit", type=int, default=None, help="Only the first N clips of the list.")
@click.option("--strict", is_flag=True, help="Exit non-zero when any clip of the list is not ok.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def download(strict: bool, **options) -> None:
    """Download clips with yt-dlp into OUT/<clip_id>.<ext>, resumably.

    \b
    YouTube ids with a start time (VGGSound) fetch only their section;
    Flickr SoundNet URLs and plain http(s) URLs are fetched whole. Every clip
    gets a record in OUT/manifest.jsonl (ok, unavailable, failed, skipped);
    a rerun skips finished clips. Exits 0 when the run completes, even if
    some clips are unavailable or failed (see the summary); with --strict it
    exits 1 unless every clip of the list is ok.

    \b
    Examples:
      avprep download --ids vggss/test-5158 --out videos/ -j 8 --rate-limit 30/min
      avprep download --ids flickr_test.csv --dataset flickr --urls-from soundnet/urls-public \\
          --out flickr/
      avprep download --ids videos/missing.txt --out videos/   # after avprep ingest
    """
    from avprep.stages.download_ids import check_strict, download_ids

    cfg, report = download_ids(**options)
    _print_summary(report, cfg.out)
    if strict:
        check_strict(report)


def _print_summary(report, out) -> None:
    counts = report.counts()
    parts = [f"{report.requested} clip(s) in the list"]
    if report.duplicates:
        parts.append(f"{report.duplicates} duplicate(s) dropped")
    if report.rejected:
        parts.append(f"{len(report.rejected)} bad row(s) skipped")
    click.echo("download: " + ", ".join(parts))
    click.echo(f"  already done       {report.already_done:>7}")
    if report.not_retried:
        click.echo(f"  not retried        {report.not_retried:>7}  (use --retry-failed)")
    click.echo(f"  attempted now      {len(report.records):>7}")
    for status in ("ok", "unavailable", "failed", "skipped"):
        if counts.get(status):
            click.echo(f"    {status:<16} {counts[status]:>7}")
    if report.without_audio:
        click.echo(
            f"  note: {report.without_audio} ok clip(s) have no audio stream (has_audio=false)"
        )
    from avprep.stages.causes import failure_hint, group_causes

    causes = group_causes(report.records)
    if causes:
        click.echo("  top error reasons, by cause (clips, cause, an example clip):")
        for cause, n, example in causes[:8]:
            click.echo(f"    {n:>7}  {cause}  (e.g. {example})")
    click.echo(f"folder {out} (manifest.jsonl):")
    counts_all = report.manifest.counts()
    for status in ("ok", "unavailable", "failed", "skipped"):
        if counts_all.get(status):
            click.echo(f"  {status:<16} {counts_all[status]:>7}")
    click.echo(f"  {'total':<16} {len(report.manifest):>7}")
    hint = failure_hint(report.records)
    if hint:
        click.echo(f"hint: {hint}", err=True)
