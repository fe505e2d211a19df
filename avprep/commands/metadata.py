"""``avprep metadata``: the registry of public metadata files, parsers, leakage check.

A thin layer over :mod:`avprep.catalog`, :mod:`avprep.recipes` and
:mod:`avprep.leakage`; see docs/metadata.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from avprep import atomic
from avprep.errors import AvprepError, ConfigError


class LeakageFound(AvprepError):
    """``check-leakage --fail-on-overlap`` found train clips in the test list."""

    exit_code = 3


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@click.group()
def metadata() -> None:
    """Public id lists and annotations: list, show, fetch, parse, check-leakage.

    \b
    Examples:
      avprep metadata list
      avprep metadata fetch vggss/test-5158
    """


@metadata.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as one JSON list.")
def list_cmd(as_json: bool) -> None:
    """List the registry: name, format, corpus, split, clips, size, sha256, cached.

    \b
    Examples:
      avprep metadata list
      avprep metadata list --json
    """
    from avprep import catalog
    from avprep.home import cache_dir

    entries = catalog.list_entries()
    cached = {e.name: (cache_dir("metadata") / e.relpath).is_file() for e in entries}
    if as_json:
        click.echo(json.dumps([{**e.to_dict(), "cached": cached[e.name]} for e in entries]))
        return
    rows = [
        (
            e.name,
            e.format,
            e.corpus,
            e.split or "all",
            "?" if e.clips is None else f"{e.clips:,}",
            _size(e.bytes),
            e.sha256[:12] if e.sha256 else "unknown",
            "yes" if cached[e.name] else "-",
        )
        for e in entries
    ]
    click.echo(
        _table(rows, ("NAME", "FORMAT", "CORPUS", "SPLIT", "CLIPS", "SIZE", "SHA256", "CACHED"))
    )
    n_aliases = sum(len(e.aliases) for e in entries)
    click.echo(
        f"\n{len(entries)} entries ({n_aliases} aliases: see `avprep metadata show NAME`); "
        f"{sum(cached.values())} cached in {cache_dir('metadata')}"
    )


@metadata.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON.")
def show(name: str, as_json: bool) -> None:
    """Show one entry: addresses, sha256, format, cache state.

    \b
    Example:
      avprep metadata show vggss/test-5158
    """
    from avprep import catalog

    entry = catalog.get_entry(name)
    path = catalog.cache_path(entry.name)
    state = "not fetched"
    if path.is_file():
        state = "cached, sha256 ok" if catalog.cached(entry.name) else "cached, sha256 MISMATCH"
        if entry.sha256 is None:
            state = f"cached, sha256 {atomic.sha256_file(path)} (nothing registered to check)"
    if as_json:
        click.echo(json.dumps({**entry.to_dict(), "cache_path": str(path), "cache": state}))
        return
    fields = [
        ("name", entry.name),
        ("aliases", ", ".join(entry.aliases) or "-"),
        ("file", entry.file),
        ("format", entry.format),
        ("corpus", entry.corpus),
        ("split", entry.split or "all (train and test)"),
        ("clips", "unknown" if entry.clips is None else f"{entry.clips:,}"),
        ("bytes", "unknown" if entry.bytes is None else f"{entry.bytes:,}"),
        ("sha256", entry.sha256 or "unknown (not checked on fetch)"),
        ("cache", f"{path} ({state})"),
    ]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        click.echo(f"{key:<{width}}  {value}")
    for i, url in enumerate(entry.urls):
        click.echo(f"{'urls' if i == 0 else '':<{width}}  {url}")
    if entry.description:
        click.echo(f"\n{entry.description}")
    if entry.notes:
        click.echo(f"note: {entry.notes}")


@metadata.command()
@click.argument("names", nargs=-1)
@click.option("--all", "fetch_all", is_flag=True, help="Fetch every entry that has a sha256.")
@click.option(
    "--mirror",
    metavar="URL",
    help="Base URL (or folder) replacing the original addresses: <URL>/<name><suffix>.",
)
@click.option("--force", is_flag=True, help="Download even if a verified copy is cached.")
def fetch(names: tuple[str, ...], fetch_all: bool, mirror: str | None, force: bool) -> None:
    """Download entries into the cache (AVPREP_HOME/metadata), sha256 verified.

    \b
    Examples:
      avprep metadata fetch vggss/test-5158 sspl/vggss-test-4692
      avprep metadata fetch --all --mirror https://my.mirror/avprep-metadata
    """
    from avprep.catalog_fetch import fetch_each, fetch_failure, select_entries

    entries = select_entries(names, all_=fetch_all)
    done = reused = 0
    failures: list[AvprepError] = []
    for got in fetch_each(entries, mirror=mirror, force=force):
        if got.error is not None:
            failures.append(got.error)
            click.echo(f"FAILED  {got.error}", err=True)
            continue
        path, entry = got.path, got.entry
        check = "sha256 ok" if entry.sha256 else f"sha256 {atomic.sha256_file(path)} (unchecked)"
        verb = "cached " if got.was_cached else "fetched"
        reused += got.was_cached
        done += not got.was_cached
        click.echo(f"{verb} {entry.name}  {path}  ({_size(path.stat().st_size)}, {check})")
    click.echo(f"\nsummary: {done} fetched, {reused} already cached, {len(failures)} failed")
    if failures:
        raise fetch_failure(
            failures, f"{len(failures)} of {len(entries)} entries could not be fetched (see above)"
        )


def _write_table(df, out: Path) -> None:
    suffix = out.suffix.lower()
    if suffix == ".txt":
        atomic.write_text(out, "".join(f"{c}\n" for c in df["clip_id"]))
    elif suffix == ".jsonl":
        atomic.write_text(out, df.to_json(orient="records", lines=True))
    elif suffix == ".csv":
        atomic.write_text(out, df.to_csv(index=False))
    else:
        raise ConfigError(f"--out {out}: use .csv (table), .jsonl (records) or .txt (clip ids)")


def _format_choices() -> list[str]:
    from avprep.recipes import FORMATS

    return ["auto", *FORMATS.names()]


def _id_list_datasets(aliases: tuple[str, ...] = ()) -> list[str]:
    """The corpora an id list can belong to, each followed by its ``aliases`` named here.

    They are the datasets the generic clip table (format ``clip-table-csv``) holds:
    corpora of downloadable clips (is3, avsbench and vpo are annotation sets).
    """
    from avprep.recipes import FORMATS
    from avprep.recipes.formats import DATASET_ALIASES, DATASETS

    held = FORMATS.get("clip-table-csv").datasets
    out = []
    for name in DATASETS:
        if name in held:
            out += [name, *(a for a in aliases if DATASET_ALIASES.get(a) == name)]
    return out


@metadata.command()
@click.argument("source", metavar="FILE")
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(_format_choices()),
    help="Input format; auto detects it from the content.",
)
@click.option(
    "--dataset",
    type=click.Choice(_id_list_datasets(aliases=("urls",))),
    help="Corpus the ids belong to (restricts detection, checks ids).",
)
@click.option("--split", help="Keep rows of this split (train, test); label rows without one.")
@click.option("--skip-bad", is_flag=True, help="Skip malformed lines (counted) instead of failing.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the clip table: .csv, .jsonl, or .txt (clip ids only).",
)
def parse(
    source: str,
    fmt: str,
    dataset: str | None,
    split: str | None,
    skip_bad: bool,
    out: Path | None,
) -> None:
    """Parse FILE (a path or a registry name) into the clip table and summarise it.

    \b
    Examples:
      avprep metadata parse vggsound/csv --split test
      avprep metadata parse my_ids.txt --dataset vggsound --out clips.csv
    """
    from avprep.recipes import load_clips

    df = load_clips(source, fmt=fmt, dataset=dataset, split=split, skip_bad=skip_bad)
    a = df.attrs
    if out is not None:
        _write_table(df, out)
    click.echo(f"file        {a['path']}" + (f"  ({a['name']})" if a.get("name") else ""))
    click.echo(f"format      {a['format']}")
    click.echo(f"clips       {len(df):,}")
    for col in ("source", "split"):
        counts = df[col].fillna("-").value_counts()
        click.echo(f"{col:<11} " + (", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "-"))
    if df["label"].notna().any():
        click.echo(f"labels      {df['label'].nunique():,} distinct")
    click.echo(f"with url    {int(df['url'].notna().sum()):,}")
    click.echo(f"duplicates  {a['duplicates']:,} dropped")
    if a["filtered"]:
        click.echo(f"filtered    {a['filtered']:,} rows of other splits")
    click.echo(f"skipped     {a['skipped']:,} malformed")
    for _, reason in a["bad_lines"][:5]:
        click.echo(f"  {reason}")
    if a["skipped"] > 5:
        click.echo(f"  ... and {a['skipped'] - 5} more")
    if out is not None:
        click.echo(f"written     {out}")


@metadata.command("check-leakage")
@click.option("--train", "train", required=True, metavar="FILE", help="Training list or name.")
@click.option("--test", "test", required=True, metavar="FILE", help="Test list or name.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--skip-bad", is_flag=True, help="Skip malformed lines instead of failing.")
@click.option(
    "--dataset",
    default=None,
    type=click.Choice(_id_list_datasets()),
    help="Read both lists as this corpus (chaotic: <VID>_<fid> ids, videos compared too).",
)
@click.option("--show", default=20, show_default=True, help="How many overlapping ids to print.")
@click.option(
    "--fail-on-overlap",
    is_flag=True,
    help="Exit with status 3 if any train clip is a test clip (for CI).",
)
def check_leakage(
    train: str,
    test: str,
    as_json: bool,
    skip_bad: bool,
    dataset: str | None,
    show: int,
    fail_on_overlap: bool,
) -> None:
    """Report how many (and which) training clips are also test clips.

    \b
    Example:
      avprep metadata check-leakage --train vggsound/train-144k --test vggss/test-5158
    """
    from avprep.leakage import check_leakage as check

    report = check(train, test, skip_bad=skip_bad, dataset=dataset)
    if as_json:
        click.echo(json.dumps(report))
    else:
        click.echo(f"train   {report['train']:,} clips  ({report['train_name']})")
        click.echo(f"test    {report['test']:,} clips  ({report['test_name']})")
        pct = 100 * report["overlap_fraction_of_test"]
        click.echo(f"overlap {report['overlap']:,} train clips are test clips ({pct:.2f}% of test)")
        click.echo(f"videos  {report['video_overlap']:,} videos appear on both sides")
        ids = report["overlap_ids"]
        for clip in ids[:show]:
            click.echo(f"  {clip}")
        if len(ids) > show:
            click.echo(f"  ... and {len(ids) - show} more (--json lists all)")
    if fail_on_overlap and report["overlap"]:
        raise LeakageFound(f"{report['overlap']} training clips are also test clips")
