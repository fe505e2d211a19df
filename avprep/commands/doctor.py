"""``avprep doctor``: check the tools avprep needs and print their versions."""

from __future__ import annotations

import importlib
import sys

import click

from avprep.home import home


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - any import failure means "missing"
        return None
    return str(getattr(mod, "__version__", "present"))


@click.command()
def doctor() -> None:
    """Print versions of ffmpeg, yt-dlp, torch, CUDA and the cache folder.

    Exits non-zero if something required is missing.

    \b
    Example:
      avprep doctor
    """
    from avprep import ffmpeg

    problems: list[str] = []
    rows: list[tuple[str, str]] = [("python", sys.version.split()[0])]
    try:
        rows.append(("ffmpeg", f"{ffmpeg.ffmpeg_version()} ({ffmpeg.ffmpeg_binary()})"))
    except Exception as exc:  # noqa: BLE001
        rows.append(("ffmpeg", "MISSING"))
        problems.append(str(exc))
    for name, module, required in [
        ("yt-dlp", "yt_dlp.version", True),
        ("h5py", "h5py", True),
        ("numpy", "numpy", True),
        ("opencv", "cv2", True),
        ("torch", "torch", True),
        ("torchvision", "torchvision", True),
        ("dask", "dask", False),
    ]:
        version = _version(module)
        if module == "yt_dlp.version" and version is not None:
            from yt_dlp.version import __version__ as version
        rows.append((name, version or ("MISSING" if required else "not installed (optional)")))
        if version is None and required:
            problems.append(f"python package for {name} is missing")
    try:
        import torch

        cuda = (
            f"yes ({torch.cuda.device_count()} device(s), {torch.cuda.get_device_name(0)})"
            if torch.cuda.is_available()
            else "no (CPU only)"
        )
    except Exception:  # noqa: BLE001
        cuda = "unknown"
    rows.append(("cuda", cuda))
    rows.append(("cache", str(home())))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")
    if problems:
        for p in problems:
            click.echo(f"problem: {p}", err=True)
        sys.exit(1)
