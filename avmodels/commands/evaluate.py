"""``avmodels eval``: localisation maps of a trained model on test shards, scored.

Thin layer over :func:`avmodels.engine.evaluate.evaluate_model`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from avmodels.commands.options import (
    model_file_of,
    model_file_options,
    model_set_option,
    preset_option,
)
from avmodels.engine.amp import AMP_MODES
from avmodels.metrics.mssl import INSTRUMENT_BENCHMARK
from avmodels.metrics.mssl import MODES as INSTRUMENT_MODES
from avmodels.metrics.sensitivity import PROBES
from avprep.clikit import benchmark_option, no_progress_option, progress_wanted


@click.command("eval", context_settings={"show_default": True})
@model_file_options
@click.option("--data", multiple=True, required=True, help="Test store(s).")
@benchmark_option(
    required=True,
    extra=(INSTRUMENT_BENCHMARK,),
    help="Annotation format of --annotations (audioset-instrument: Multi-Source's "
    "class-aware metric, see docs/evaluation.md).",
)
@click.option(
    "--annotations",
    required=True,
    type=click.Path(exists=True),
    help="Ground truth (VGG-SS JSON, Flickr XML folder, ...).",
)
@preset_option(help="Metric preset [default: default, ours].")
@click.option(
    "--ids",
    help="Score only these clips: an id list file, a metadata registry name "
    "(e.g. htf/flickr-test-trimmed, vggss/test-4670) or a,b,c.",
)
@click.option(
    "--ids-from",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Row ids of an SSPL-layout --data kept outside its h5 files, one a line "
    "(e.g. the Chaotic World fork's ChaoticWorld_test.csv); default: its index or row numbers.",
)
@click.option(
    "--report",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write metrics.json, per_sample.csv and maps.npz here.",
)
@click.option("--device", default="auto", help="cpu | cuda | cuda:N | auto.")
@click.option("--batch-size", type=int, default=32, help="Clips per forward pass.")
@click.option("--workers", type=int, default=2, help="DataLoader workers.")
@click.option(
    "--amp",
    type=click.Choice(AMP_MODES),
    default="none",
    help="Mixed precision of the forward pass.",
)
@click.option("--allow-missing", is_flag=True, help="Score annotated clips that have maps only.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@model_set_option
@click.option(
    "--video-ids",
    type=click.Path(exists=True, dir_okay=False),
    help="audioset-instrument: val_audio.pkl (the order normav.json counts videos in).",
)
@click.option(
    "--mode",
    type=click.Choice(INSTRUMENT_MODES),
    default="class",
    help="audioset-instrument: a map per instrument (the paper) or one per frame.",
)
@click.option(
    "--audio-probe",
    "probes",
    multiple=True,
    type=click.Choice(PROBES),
    help="Also rerun the model with this audio in place of each clip's own (repeatable) and "
    "report how much the maps change (map IoU, max drop, pIA) and the AP of true vs probe "
    "audio from the model's confidence.",
)
@click.option("--probe-seed", type=int, default=0, help="Seed of the noise and swap probes.")
@no_progress_option
def eval_cmd(run, ckpt, data, benchmark, annotations, preset, ids, ids_from, report, device,
             batch_size, workers, amp, allow_missing, as_json, sets, video_ids, mode, probes,
             probe_seed) -> None:  # fmt: skip
    """Evaluate a trained model on test shards: cIoU, AUC, mean IoU, pointing.

    \b
    Example:
      avmodels eval --run runs/sspl-flickr10k --data shards/flickr-test \\
          --benchmark flickr --annotations flickr/Annotations --preset sspl --report out/
    """
    from avmodels.engine.evaluate import evaluate_listed

    if sets and (benchmark == INSTRUMENT_BENCHMARK or probes):
        from avprep.errors import ConfigError

        raise ConfigError("--set applies to the standard evaluation only, not with "
                          "--benchmark audioset-instrument or --audio-probe")  # fmt: skip
    if benchmark == INSTRUMENT_BENCHMARK:  # Multi-Source's class-aware metric
        from avmodels.engine.class_maps import evaluate_instrument_model

        res = evaluate_instrument_model(
            str(model_file_of(run, ckpt)), list(data), annotations, video_ids, mode=mode,
            device=device, batch_size=batch_size, allow_missing=allow_missing,
            report_dir=str(report) if report else None,
            progress=progress_wanted() and not as_json,
        )  # fmt: skip
        click.echo(json.dumps(res.to_dict()) if as_json else (
            f"audioset-instrument ({mode}): {res.n} frames  ciou {res.ciou:.4f}  "
            f"auc {res.auc:.4f}  mean_iou {res.mean_iou:.4f}"))  # fmt: skip
        return
    model, result, ids_list = evaluate_listed(
        run, ckpt, data, benchmark, annotations, ids=ids, preset=preset, report_dir=report,
        device=device, batch_size=batch_size, num_workers=workers, amp=amp,
        allow_missing=allow_missing, sets=sets, ids_from=ids_from, progress=progress_wanted(),
    )  # fmt: skip
    sensitivity = {}
    for kind in probes:
        from avmodels.engine.probe import run_probe

        sensitivity[kind] = run_probe(
            model, list(data), kind, ids=ids_list, seed=probe_seed, device=device,
            batch_size=batch_size, num_workers=workers,
        )  # fmt: skip
    if as_json:
        out = result.to_dict()
        if sensitivity:
            out["audio_probes"] = {k: v.to_dict() for k, v in sensitivity.items()}
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"model     {model}")
    click.echo(f"preset    {result.preset}   clips {result.n}")
    for key in ("ciou", "auc", "mean_iou", "pointing"):
        click.echo(f"{key:<9} {getattr(result, key):.4f}")
    for kind, r in sensitivity.items():
        click.echo(
            f"probe {kind:<8} map IoU {r.map_iou:.4f}  max drop {r.max_drop:.4g}  "
            f"pIA {r.pia:.4f}  AUC-pIA {r.auc_pia:.4f}  AP true-vs-probe {r.ap_sounding:.4f}"
        )
    if report:
        click.echo(f"report    {report}/metrics.json, per_sample.csv, maps.npz")
