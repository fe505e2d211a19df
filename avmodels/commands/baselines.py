"""``avmodels baselines``: centre prior, random map and ceiling scores of a test set."""

from __future__ import annotations

import json

import click

from avmodels.baselines import MODES as CEILING_MODES
from avmodels.commands.options import preset_option
from avprep.clikit import benchmark_option


@click.command()
@click.option("--annotations", "annotations_path", required=True, type=click.Path(exists=True),
              help="Ground truth: VGG-SS style JSON, a folder of Flickr XML, ...")  # fmt: skip
@benchmark_option(required=True, help="Which reader and ground-truth rule to use.")
@click.option("--ids", "ids_spec", default=None,
              help="Score only these clips: an id list file (e.g. splits/test.txt) or a,b,c.")  # fmt: skip
@preset_option(default="default", show_default=True, help="Metric preset.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random maps.")
@click.option("--ceiling", "ceiling_mode", type=click.Choice(CEILING_MODES), default="soft",
              show_default=True,
              help="soft: ground truth ranked by distance outside the boxes (tie-free); "
              "binary: the bare ground-truth map.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def baselines(
    annotations_path: str,
    benchmark: str,
    ids_spec: str | None,
    preset: str,
    seed: int,
    ceiling_mode: str,
    as_json: bool,
) -> None:
    """Score the centre prior, a random map and the ground truth itself (the ceiling).

    \b
    Read a model's numbers against these: the centre prior is what a map that
    ignores the sound gets; the ceiling is the most the metric allows, because
    median binarisation keeps about half the frame.

    \b
    Example (SynthAV test split):
      avmodels baselines --annotations synthav/annotations/vggss.json \\
          --benchmark vggss --ids synthav/splits/test.txt
    """
    from avmodels.baselines import score_baselines
    from avmodels.metrics import get_preset
    from avprep.annotations import load_annotations, read_ids
    from avprep.errors import InputError

    get_preset(preset)  # an unknown preset fails before any work, listing the valid ones
    anns = load_annotations(annotations_path, benchmark)
    if ids_spec:
        wanted = read_ids(ids_spec)
        unknown = [i for i in wanted if i not in anns]
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise InputError(f"{len(unknown)} id(s) of {ids_spec} have no annotation: {shown}")
        anns = {i: anns[i] for i in wanted}
    results = score_baselines(anns, preset, seed=seed, ceiling_mode=ceiling_mode)
    if as_json:
        out = {
            "annotations": str(annotations_path),
            "benchmark": benchmark,
            "preset": preset,
            "n": len(anns),
            "ceiling_mode": ceiling_mode,
            "seed": seed,
            "baselines": {name: r.to_dict() for name, r in results.items()},
        }
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"{len(anns)} clips, benchmark {benchmark}, preset {preset}")
    click.echo(f"{'map':<10}{'cIoU':>8}{'AUC':>8}{'mean IoU':>10}{'pointing':>10}")
    for name, r in results.items():
        click.echo(f"{name:<10}{r.ciou:>8.3f}{r.auc:>8.3f}{r.mean_iou:>10.3f}{r.pointing:>10.3f}")
