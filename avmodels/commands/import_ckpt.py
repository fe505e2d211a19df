"""``avmodels import METHOD --<file> PATH ... --out model.pt``: official checkpoints.

One subcommand per importer registered in :data:`avmodels.importers.IMPORTERS`,
with one ``--<name>`` option per file it takes.
"""

from __future__ import annotations

from pathlib import Path

import click


def _command(name: str) -> click.Command:
    from avmodels.importers import IMPORTERS

    imp = IMPORTERS.get(name)

    def run(out: Path, **files: Path | None) -> None:
        from avmodels.importers import import_checkpoint

        path = import_checkpoint(name, {k: v for k, v in files.items()}, out)
        click.echo(f"wrote {path}")

    params: list[click.Parameter] = [
        click.Option(
            [f"--{a.name}", a.name],
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            required=a.required,
            help=a.help,
        )  # fmt: skip
        for a in imp.files
    ]
    params.append(
        click.Option(
            ["--out", "out"],
            required=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="Model file to write.",
        )  # fmt: skip
    )
    example = " ".join(f"--{a.name} {a.name.upper()}" for a in imp.files if a.required)
    text = f"{imp.description}\n\n\b\nExample:\n  avmodels import {name} {example} --out model.pt"
    return click.Command(name, callback=run, params=params, help=text)


class _ImporterGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        from avmodels.importers import IMPORTERS

        return IMPORTERS.names()

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        from avmodels.importers import IMPORTERS

        return _command(name) if name in IMPORTERS else None


@click.group(cls=_ImporterGroup, name="import")
def import_ckpt() -> None:
    """Convert a paper's released checkpoint into an avmodels model file.

    \b
    Example:
      avmodels import sspl --frame frame_best.pth --sound sound_best.pth \\
          --head ssl_head_best.pth --pcm pcm_best.pth --out sspl-pcm.pt
      avmodels eval --ckpt sspl-pcm.pt --data shards/vggss --benchmark vggss ...
    """
