"""``avmodels report``: the HTML page of an evaluation, or one table across runs."""

from __future__ import annotations

from pathlib import Path

import click

from avprep.clikit import benchmark_option


@click.command("report", context_settings={"show_default": True})
@click.argument("sources", nargs=-1, required=True, metavar="RUN_OR_EVAL...")
@click.option(
    "--compare",
    is_flag=True,
    help="One table across all the given runs/evals: mean ± std over seeds "
    "(index.html, compare.csv, compare.md).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the page [default: EVAL/html, or ./compare with --compare].",
)
@click.option(
    "--annotations",
    type=click.Path(exists=True, path_type=Path),
    help="Ground truth [default: the file metrics.json names].",
)
@benchmark_option(help="Annotation format of --annotations [default: the evaluation's].")
@click.option(
    "--frames",
    type=click.Path(exists=True, path_type=Path),
    help="Store to take the overlays' frames from [default: the evaluated store].",
)
@click.option(
    "--examples", type=click.IntRange(0, 50), default=4, help="Best and worst clips shown."
)
@click.option("--seed", type=int, default=0, help="Seed of the random baseline map.")
def report(sources, compare, out, annotations, benchmark, frames, examples, seed) -> None:
    """Write the HTML report of an evaluation (`avmodels eval --report DIR`).

    The page puts the model's cIoU, AUC, mean IoU and pointing beside the
    centre prior, a random map, the whole image and the ceiling, with the
    success curve, the best and worst clips, a per-class table when the
    ground truth has classes, and the provenance of every figure.

    \b
    Examples:
      avmodels eval --run runs/ssltie --data shards/test --benchmark vggss \\
          --annotations vggss.json --report runs/ssltie/eval
      avmodels report runs/ssltie/eval --out reports/ssltie
      avmodels report --compare runs/ssltie-s0 runs/ssltie-s1 runs/ezvsl-s0 --out reports/cmp
    """
    from avmodels.report import find_evals, report_from_eval, write_compare
    from avprep.errors import ConfigError

    if compare:
        page = write_compare(out or Path("compare"), list(sources))
        click.echo(f"compare  {page}")
        click.echo(f"         {page.parent / 'compare.csv'}, {page.parent / 'compare.md'}")
        click.echo((page.parent / "compare.md").read_text().rstrip())
        return
    if len(sources) != 1:
        raise ConfigError(
            "give one eval folder, or --compare with several "
            "(e.g. avmodels report --compare runs/a runs/b --out reports/cmp)"
        )
    evals = find_evals(sources[0])
    if len(evals) > 1:
        shown = ", ".join(str(e) for e in evals)
        raise ConfigError(f"{sources[0]} holds several evaluations ({shown}): name one")
    page = report_from_eval(
        evals[0],
        out or evals[0] / "html",
        annotations,
        benchmark=benchmark,
        frames=frames,
        k=examples,
        seed=seed,
    )
    click.echo(f"report   {page}")
