"""``avmodels weights``: download and check pretrained backbone weights."""

from __future__ import annotations

import click


@click.group()
def weights() -> None:
    """Pretrained weights (VGG16 ImageNet, VGGish AudioSet) in the local cache.

    \b
    Examples:
      avmodels weights list
      avmodels weights fetch vgg16 vggish
    """


@weights.command("list")
def list_cmd() -> None:
    """List the known weight files, their URL and whether they are cached.

    \b
    Example:
      avmodels weights list
    """
    from avmodels.weights import WEIGHTS, cached_path, is_cached

    for name, spec in WEIGHTS.items():
        state = "cached" if is_cached(name) else "missing"
        click.echo(f"{name:<8} {state:<8} {cached_path(name)}")
        click.echo(f"{'':<8} {spec.url}")
        click.echo(f"{'':<8} sha256 {spec.expected}  {spec.description}")


@weights.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--mirror", help="Fetch the same file names from this base URL instead.")
@click.option("--force", is_flag=True, help="Download even if cached.")
def fetch(names: tuple[str, ...], mirror: str | None, force: bool) -> None:
    """Download weights NAMES (vgg16, vggish) with a sha256 check.

    \b
    Example:
      avmodels weights fetch vgg16 vggish
    """
    from avmodels.weights import fetch as do_fetch

    for name in names:
        path = do_fetch(name, mirror=mirror, force=force)
        click.echo(f"{name}: {path}")
