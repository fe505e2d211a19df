"""``avprep audioset-instrument``: Multi-Source's AudioSet-instrument lists."""

from __future__ import annotations

from pathlib import Path

import click

from avprep.profiles import SPLITS


@click.group("audioset-instrument")
def audioset_instrument() -> None:
    """Multi-Source's AudioSet-instrument set (val_audio.pkl, train_audio.pkl).

    \b
    Example:
      avprep audioset-instrument clips --tags mssl/audioset-instrument-val \\
          --segments eval_segments.csv --out ai-test.csv
    """


@audioset_instrument.command("clips")
@click.option(
    "--tags",
    required=True,
    metavar="PKL|NAME",
    help="The tag pickle (val_audio.pkl, your train_audio.pkl) or a registry name "
    "(mssl/audioset-instrument-val); read with a restricted unpickler.",
)
@click.option(
    "--segments",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="AudioSet segment CSV (eval_segments.csv, balanced_train_segments.csv, "
    "unbalanced_train_segments.csv); repeat for several, the first listing of a video wins.",
)
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default="test",
    show_default=True,
    help="The split written in the table.",
)
@click.option(
    "--only-matched",
    is_flag=True,
    help="Leave out videos no segment CSV lists (default: keep them with unknown times; "
    "the download then fetches the whole video).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The clip table to write (.csv; `avprep download --ids` reads it).",
)
def clips(tags: str, segments: tuple[str, ...], split: str, only_matched: bool, out: Path) -> None:
    """Join a tag pickle with AudioSet's segment CSVs: one clip per video with its 10 s.

    The pickles list YouTube ids and 15 instrument tags but no times; AudioSet's
    segment CSVs give each video's start and end. The table (clip id = the
    YouTube id, url, start, end, instruments as the label) is what `avprep
    download --ids` takes to cut those segments.

    \b
    Example:
      avprep audioset-instrument clips --tags mssl/audioset-instrument-val \\
          --segments eval_segments.csv --segments balanced_train_segments.csv \\
          --out ai-test.csv
      avprep download --ids ai-test.csv --out videos/
    """
    from avprep import atomic
    from avprep.errors import ConfigError, InputError
    from avprep.recipes import resolve_source
    from avprep.recipes.audioset_instrument import instrument_clips

    if out.suffix.lower() != ".csv":
        raise ConfigError(f"--out {out}: write the clip table as .csv")
    path, _ = resolve_source(tags)
    df = instrument_clips(path, split=split, segments=list(segments))
    matched = df["start"].notna()
    unmatched = df.loc[~matched, "clip_id"].tolist()
    if only_matched:
        df = df[matched].reset_index(drop=True)
    if df.empty:
        raise InputError(f"no video of {path} is listed in the segment CSVs; nothing written")
    atomic.write_text(out, df.to_csv(index=False))
    tagged = int(df["label"].notna().sum())
    click.echo(f"videos      {int(matched.size):,} in {path}")
    click.echo(f"with times  {int(matched.sum()):,} (from {len(segments)} segment CSV(s))")
    if unmatched:
        what = "left out" if only_matched else "kept, times unknown (whole video downloaded)"
        first = ", ".join(unmatched[:5]) + (" ..." if len(unmatched) > 5 else "")
        click.echo(f"unmatched   {len(unmatched):,} {what}: {first}")
    durations = (df["end"] - df["start"]).dropna()
    odd = int((durations.sub(10.0).abs() > 1e-6).sum())
    if odd:
        click.echo(f"not 10 s    {odd:,} segments (kept as AudioSet lists them)")
    click.echo(f"tagged      {tagged:,} with at least one instrument")
    click.echo(f"written     {out} ({len(df):,} clips)")
