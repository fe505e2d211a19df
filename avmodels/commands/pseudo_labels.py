"""``avmodels pseudo-labels``: Multi-Source's category pseudo labels for a store."""

from __future__ import annotations

import time

import click

from avmodels.methods.mssl_labels import RULES, SPECTROGRAM_SOURCES


@click.command("pseudo-labels")
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="A store (folder with index.json or a shard file); repeat for several.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="The labels file to write (.h5), what `--set labels.file=` reads.",
)
@click.option(
    "--rule",
    type=click.Choice(RULES),
    default="new",
    show_default=True,
    help="new: the simplified new/ code's generate_label(v).py; full: the paper's full model.",
)
@click.option(
    "--batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(min=1),
    help="Clips per forward pass.",
)
@click.option(
    "--workers",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="DataLoader workers.",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 ...")
@click.option(
    "--spectrogram",
    type=click.Choice(SPECTROGRAM_SOURCES),
    default="audio",
    show_default=True,
    help="The tagger's log-mel: computed from the stored audio (the mssl front end) or "
    "read from the store (extracted with --profile mssl).",
)
@click.option("--tagger-weights", type=click.Path(dir_okay=False), help="mobilecrnn_v2.pth.")
@click.option("--vision-weights", type=click.Path(dir_okay=False), help="torchvision resnet18.")
@click.option("--cluster-a", type=click.Path(dir_okay=False), help="utils/cluster_a.npy (7x527).")
@click.option("--cluster-v", type=click.Path(dir_okay=False), help="utils/cluster_v3.npy (1000x7).")
@click.option(
    "--no-download",
    is_flag=True,
    help="Fail instead of downloading files missing from the weights cache.",
)
@click.option(
    "--from-tags",
    type=click.Path(exists=True, dir_okay=False),
    help="AudioSet-instrument: label every row with its video's 15 tags from this pickle "
    "(train_audio.pkl), as the original trains on them; no networks run.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def pseudo_labels(
    data,
    out,
    rule,
    batch_size,
    workers,
    device,
    spectrogram,
    tagger_weights,
    vision_weights,
    cluster_a,
    cluster_v,
    no_download,
    from_tags,
    quiet,
) -> None:
    """Label every clip of a store with Multi-Source's audio and visual pseudo labels.

    An AudioSet tagger (MobileCRNN v2) and an ImageNet ResNet-18, mapped to the
    7 AudioSet top-level categories by the authors' cluster_a.npy / cluster_v3.npy,
    give each clip a soft 7-vector per stream. Files come from the weights cache
    (`avmodels weights fetch mobilecrnn-v2 resnet18 mssl-cluster-a mssl-cluster-v3`)
    or the options. An interrupted run resumes from OUT.partial.

    \b
    Example:
      avmodels pseudo-labels --data shards/flickr-10k --out labels.h5
      avmodels train mssl --data shards/flickr-10k --set labels.file=labels.h5
      avmodels pseudo-labels --data shards/audioset-pairs --from-tags train_audio.pkl \\
          --out tags.h5    # then --set model.num_classes=15
    """
    from avmodels.methods.mssl_labels import build_labeler, write_label_file

    t0 = time.monotonic()
    if from_tags:
        from avmodels.methods.mssl_labels import write_tag_labels

        counts = write_tag_labels(data, out, from_tags)
        click.echo(f"{counts['clips']} clips labelled with their video's tags: {out}")
        return
    labeler = build_labeler(
        rule,
        tagger_weights=tagger_weights,
        vision_weights=vision_weights,
        cluster_a=cluster_a,
        cluster_v=cluster_v,
        download=not no_download,
    )
    counts = write_label_file(
        data,
        out,
        labeler,
        batch_size=batch_size,
        workers=workers,
        spectrogram=spectrogram,
        device=device,
        progress=not quiet,
    )
    click.echo(
        f"{counts['clips']} clips: {counts['labelled']} labelled now, {counts['resumed']} "
        f"from an interrupted run; rule {rule}; {out} ({time.monotonic() - t0:.1f} s)"
    )
