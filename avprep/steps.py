"""Pipeline steps: the library call behind each command a recipe may name.

A recipe stage (``pipelines/*.yaml``) names a command (``extract``,
``pack-h5``, ``avmodels train``) and its options. :func:`avprep.pipeline.run_pipeline`
looks the command up in :data:`STEPS` and calls the step function with the
options as keyword arguments (``frame-at`` -> ``frame_at``, ``in`` -> ``in_``,
``_`` -> the step's positional parameter), converted once to the types the
function declares. No command line is built or parsed.

Each step calls the library function behind the command of the same name,
takes the command's option values (``"160x120"``, ``"fps:1"``, ``"60/min"``:
the library parses them as the command does) with the command's defaults,
returns the text the command prints, and raises the error the command raises.
``avmodels`` steps live in :mod:`avmodels.steps` and are imported only when a
recipe uses them (avprep alone needs no torch).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from avprep.errors import AvprepError, ConfigError, InputError, MediaError, StoreError


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """One command a recipe may name: where its function is, which parameter takes ``_``."""

    command: str  # as a recipe writes it: "pack-h5", "metadata fetch", "avmodels train"
    target: str  # "module:function", imported when first used
    positional: str | None = None
    # "module:function" whose keyword options the step passes on as its **options: they are
    # declared (names, types, defaults) once, there
    options_of: str | None = None

    def function(self) -> Callable[..., str]:
        return _resolve(self.target)

    def parameters(self) -> dict[str, inspect.Parameter]:
        own = dict(inspect.signature(self.function()).parameters)
        if self.options_of is None:
            return own
        own = {n: p for n, p in own.items() if p.kind is not p.VAR_KEYWORD}
        passed = inspect.signature(_resolve(self.options_of)).parameters
        return {
            **own,
            **{n: p for n, p in passed.items() if n not in own and p.kind is p.KEYWORD_ONLY},
        }

    def hints(self) -> dict[str, Any]:
        hints = typing.get_type_hints(self.function())
        if self.options_of is not None:
            hints = {**typing.get_type_hints(_resolve(self.options_of)), **hints}
        return hints

    def kwargs(self, args: Mapping[str, Any], stage: str = "") -> dict[str, Any]:
        """The recipe's ``args`` as keyword arguments of the function, checked and typed."""
        params = self.parameters()
        hints = self.hints()
        where = f"stage {stage!r}: " if stage else ""
        out: dict[str, Any] = {}
        for key, value in args.items():
            name = self.positional if key == "_" else param_name(key)
            if name is None or name not in params or name == "echo":
                valid = ", ".join(sorted(option_name(p) for p in params if p != "echo"))
                what = "positional arguments" if key == "_" else f"option {key!r}"
                raise ConfigError(f"{where}'{self.command}' takes no {what}; valid: {valid}")
            if value is None or value is False and hints.get(name) is not bool:
                continue  # an absent option, as a recipe's `false` or `null` leaves it
            out[name] = coerce(value, hints.get(name, Any), f"{where}{key}")
        missing = [
            option_name(n)
            for n, p in params.items()
            if p.default is inspect.Parameter.empty
            and p.kind is p.KEYWORD_ONLY
            and n not in out
            and n != "echo"
        ]
        if missing:
            raise ConfigError(f"{where}'{self.command}' needs {', '.join(missing)}")
        return out


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def param_name(option: str) -> str:
    """``frame-at`` -> ``frame_at``; ``in`` -> ``in_`` (a Python keyword)."""
    name = option.replace("-", "_")
    return name + "_" if name in ("in", "from", "import", "global", "all") else name


def option_name(param: str) -> str:
    return param.rstrip("_").replace("_", "-")


def coerce(value: Any, hint: Any, where: str) -> Any:
    """A recipe value (often a substituted string) as the type the step declares."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return coerce(value, options[0] if len(options) == 1 else Any, where)
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        inner = (typing.get_args(hint) or (Any,))[0]
        items = value if isinstance(value, list | tuple) else [value]
        return [coerce(v, inner, where) for v in items]
    if isinstance(value, list | tuple) and hint is not Any:
        if len(value) != 1:
            raise ConfigError(f"{where}: expects one value, got {list(value)!r}")
        value = value[0]
    try:
        if hint is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("true", "false", "yes", "no", "1", "0"):
                    raise ValueError(value)
                return low in ("true", "yes", "1")
            return bool(value)
        if hint is int:
            return int(value)
        if hint is float:
            return float(value)
        if hint in (str, Path):
            return hint(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a {hint.__name__}") from None
    return value


STEPS: dict[str, StepSpec] = {
    s.command: s
    for s in (
        StepSpec("synth", "avprep.steps:synth"),
        StepSpec(
            "download",
            "avprep.steps:download",
            options_of="avprep.stages.download_ids:download_ids",
        ),
        StepSpec("download-loopback", "avprep.steps:download_loopback"),
        StepSpec("extract", "avprep.steps:extract"),
        StepSpec("pack-h5", "avprep.steps:pack_h5", options_of="avprep.store.pack:pack"),
        StepSpec("verify", "avprep.steps:verify", positional="folder"),
        StepSpec("pairs", "avprep.steps:pairs"),
        StepSpec("metadata fetch", "avprep.steps:metadata_fetch", positional="names"),
        StepSpec("htf-test-times", "avprep.steps:htf_test_times"),
        StepSpec("chaotic-world prepare", "avprep.steps:chaotic_world_prepare"),
        StepSpec("avmodels train", "avmodels.steps:train", positional="method"),
        StepSpec("avmodels eval", "avmodels.steps:evaluate"),
    )
}


def get_step(command: str | Sequence[str]) -> StepSpec:
    name = command if isinstance(command, str) else " ".join(command)
    name = " ".join(name.split())
    if name not in STEPS:
        raise ConfigError(f"a recipe cannot run '{name}'; valid: {', '.join(sorted(STEPS))}")
    return STEPS[name]


def register_step(spec: StepSpec) -> None:
    """Add a step (a plugin's command) to :data:`STEPS`; a name is registered once."""
    if spec.command in STEPS and STEPS[spec.command] != spec:
        raise ConfigError(f"step {spec.command!r} is already registered")
    STEPS[spec.command] = spec


# -- the steps ------------------------------------------------------------------------
_SIZE = re.compile(r"\s*([0-9.]+)\s*x\s*([0-9.]+)\s*")
_SPAN = re.compile(r"\s*([0-9.]+)\s*-\s*([0-9.]+)\s*")


def parse_pair(text: str | Sequence[Any], option: str, cast: Callable = int, sep: str = "x"):
    """``"160x120"`` -> ``(160, 120)`` (a pair given as a list passes through)."""
    if not isinstance(text, str):
        a, b = text
        return cast(a), cast(b)
    m = (_SIZE if sep == "x" else _SPAN).fullmatch(text)
    if not m:
        raise ConfigError(f"{option} expects A{sep}B (got {text!r})")
    try:
        return cast(m.group(1)), cast(m.group(2))
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from exc


def parse_range(text: str | float | Sequence[Any], option: str, cast: Callable = int):
    """``"2-4"`` -> ``(2, 4)``; ``"3"`` or ``3`` -> ``(3, 3)``."""
    if isinstance(text, int | float):
        return cast(text), cast(text)
    if isinstance(text, str) and re.fullmatch(r"\s*[0-9.]+\s*", text):
        v = cast(text.strip())
        return v, v
    return parse_pair(text, option, cast, sep="-")


def synth(
    *,
    out: str,
    clips: int,
    seed: int = 0,
    sources: int = 1,
    classes: int = 5,
    objects: str = "2-4",
    size: str = "320x240",
    seconds: float = 4.0,
    fps: int = 25,
    sample_rate: int = 22050,
    object_scale: str = "0.5-0.65",
    object_aspect: str = "0.5-2",
    snr: str = "0-20",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    prefix: str = "synthav",
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    progress: bool = True,
) -> str:
    """``avprep synth``: generate SynthAV into ``out`` (resumes)."""
    from avprep.synth import SynthConfig, generate

    cfg = SynthConfig(
        clips=clips,
        seed=seed,
        sources=sources,
        classes=classes,
        size=parse_pair(size, "--size"),
        seconds=seconds,
        fps=fps,
        sample_rate=sample_rate,
        objects=parse_range(objects, "--objects"),
        object_scale=parse_range(object_scale, "--object-scale", float),
        object_aspect=parse_range(object_aspect, "--object-aspect", float),
        snr_db=parse_range(snr, "--snr", float),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        prefix=prefix,
    ).validate()
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1 (got {jobs})")
    result = generate(cfg, out, jobs=jobs, backend=backend, scheduler=scheduler, progress=progress)
    splits = ", ".join(f"{k} {v}" for k, v in result.splits.items())
    text = (
        f"SynthAV in {result.out}: {result.generated} generated, {result.skipped} already there, "
        f"{len(result.failed)} failed in {result.seconds:.1f} s\n"
        f"  {cfg.clips} clips ({splits}), {cfg.classes} classes, {cfg.sources} source(s), "
        f"{cfg.width}x{cfg.height} at {cfg.fps} fps, {cfg.seconds:g} s, key frame "
        f"{cfg.key_frame} (t = {cfg.key_time:.3f} s)\n"
        f"  ground truth: {result.out}/annotations/vggss.json, {result.out}/annotations/xml/"
    )
    if result.failed:
        clip, reason = next(iter(result.failed.items()))
        raise MediaError(
            f"{len(result.failed)} clip(s) failed (first: {clip}: {reason}); "
            "rerun the same command to retry them"
        )
    return text


def download(*, strict: bool = False, **options: Any) -> str:
    """``avprep download``: the clips of ``ids`` into ``out`` with yt-dlp (resumes)."""
    from avprep.stages.download_ids import check_strict, download_ids

    cfg, report = download_ids(**options)
    counts = report.counts()
    text = (
        f"download: {report.requested} clip(s) in the list, {report.already_done} already done, "
        f"{len(report.records)} attempted now ("
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        + f"); folder {cfg.out}: {len(report.manifest)} recorded"
    )
    if strict:
        check_strict(report)
    return text


def download_loopback(
    *,
    folder: str,
    lists: list[str],
    out: str,
    urls: str,
    jobs: int = 4,
    backend: str = "loky",
    retries: int = 3,
    backoff: float = 2.0,
    timeout: float = 30.0,
    progress: bool = True,
) -> str:
    """Serve ``folder``'s ``<id>.mp4`` on 127.0.0.1 and fetch the clips of the id
    ``lists`` with :func:`download` (yt-dlp), exactly as remote clips are fetched.

    SynthAV's download stage (``make demo``): the URL list is written to
    ``urls``; the server lives while the download runs.
    """
    from avprep.atomic import write_text
    from avprep.loopback import bypass_proxy_for_loopback, serve_folder

    ids = [
        line.strip()
        for path in lists
        for line in Path(path).read_text().splitlines()
        if line.strip()
    ]
    src = Path(folder)
    missing = [c for c in ids if not (src / f"{c}.mp4").is_file()]
    if missing:
        raise InputError(f"{len(missing)} videos are missing from {src}, e.g. {missing[0]}")
    bypass_proxy_for_loopback()
    with serve_folder(src) as base:
        write_text(urls, "".join(f"{base}{c}.mp4\n" for c in sorted(ids)))
        text = download(
            ids=urls, dataset="urls", out=out, jobs=jobs, backend=backend, retries=retries,
            backoff=backoff, timeout=timeout, progress=progress,
        )  # fmt: skip
    return f"served {src} at {base}\n{text}"


def extract(
    *,
    in_: str,
    out: str,
    profile: str = "sspl",
    split: str = "train",
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    times: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    frame_at: str | None = None,
    seek: str | None = None,
    image_size: int | None = None,
    resize: str | None = None,
    interpolation: str | None = None,
    jpeg_quality: int | None = None,
    audio_seconds: float | None = None,
    audio_window: str | None = None,
    short_audio: str | None = None,
    sample_rate: str | None = None,
    spectrogram: str | None = None,
    flow: str | None = None,
    flow_legacy_htf: bool | None = None,
    window_outside: str | None = None,
) -> str:
    """``avprep extract``: the profile's inputs of every clip of ``in_`` into ``out`` (resumes)."""
    from avprep.profiles import get_profile
    from avprep.stages.extract import run_extract

    rate: int | str | None = sample_rate
    if sample_rate is not None and str(sample_rate) != "native":
        try:
            rate = int(sample_rate)
        except ValueError:
            raise ConfigError(
                f"--sample-rate: {sample_rate!r} is not a rate in Hz or 'native'"
            ) from None
    prof = get_profile(
        profile, split=split, frame_at=frame_at, seek=seek, image_size=image_size, resize=resize,
        interpolation=interpolation, jpeg_quality=jpeg_quality, audio_seconds=audio_seconds,
        audio_window=audio_window, short_audio=short_audio, sample_rate=rate,
        spectrogram=spectrogram, flow=flow, flow_legacy_htf=flow_legacy_htf or None,
        window_outside=window_outside,
    )  # fmt: skip
    summary = run_extract(
        in_, out, prof, jobs=jobs, backend=backend, scheduler=scheduler, limit=limit,
        progress=progress, times=times,
    )  # fmt: skip
    if summary.failed and not summary.ok and not summary.already_done:
        raise MediaError(
            f"all {summary.failed} clip(s) failed; reasons are in {out}/manifest.jsonl"
        )
    return summary.text()


def pack_h5(
    *, in_: str, out: str, split: str, ids: str | None = None, modalities: str | None = None,
    released_profile: str = "sspl", strict: bool = False, **options: Any,
) -> str:  # fmt: skip
    """``avprep pack-h5``: extracted clips (or a released folder) into sharded HDF5."""
    from avprep.store.pack_h5 import check_strict
    from avprep.store.pack_h5 import pack_h5 as pack_folder

    lines: list[str] = []
    result = pack_folder(
        in_, out, split, ids=ids, modalities=modalities, released_profile=released_profile,
        note=lines.append, **options,
    )  # fmt: skip
    lines.append(result.summary())
    if strict:
        check_strict(result)
    return "\n".join(lines)


def verify(
    *, folder: str, no_hash: bool = False, no_content: bool = False, jobs: int = 1,
    progress: bool = True,
) -> str:  # fmt: skip
    """``avprep verify``: check a store; a store with problems is a :class:`StoreError`."""
    from avprep.store.verify import verify_store

    report = verify_store(
        folder, hashes=not no_hash, content=not no_content, jobs=jobs, progress=progress
    )
    if not report.ok:
        raise StoreError(
            f"{len(report.problems)} problem(s) found in {folder} (first: {report.problems[0]}); "
            f"`avprep verify {folder}` lists them"
        )
    return report.format()


def pairs(
    *,
    in_: str,
    out: str,
    seconds: float = 1.0,
    window: str = "aligned",
    ids: str | None = None,
    progress: bool = True,
) -> str:
    """``avprep pairs``: a 1 fps extraction as one clip per (frame, its own audio)."""
    from avprep.frame_pairs import split_pairs
    from avprep.idspec import read_ids

    listed = read_ids(ids) if ids else None
    c = split_pairs(in_, out, seconds=seconds, window=window, progress=progress, ids=listed)
    text = (
        f"{c['clips']} clips -> {c['pairs']} pairs written, {c['kept']} kept from an earlier "
        f"run, {c['failed']} pairs failed, {c['skipped_clips']} clips without sampled frames"
    )
    if c.get("not_extracted"):
        text += f"; {c['not_extracted']} listed clips are not in the extraction"
    if c["pairs"] + c["kept"] == 0:
        raise MediaError(f"{text}; no pair was written")
    return text


def metadata_fetch(
    *, names: list[str] | None = None, all_: bool = False, mirror: str | None = None,
    force: bool = False,
) -> str:  # fmt: skip
    """``avprep metadata fetch``: registry entries into the cache, sha256 verified."""
    from avprep.catalog_fetch import fetch_each, fetch_failure, select_entries

    entries = select_entries(names or [], all_=all_)
    lines = []
    failures: list[AvprepError] = []
    for got in fetch_each(entries, mirror=mirror, force=force):
        if got.error is not None:
            failures.append(got.error)
            lines.append(f"FAILED  {got.error}")
            continue
        lines.append(f"{'cached ' if got.was_cached else 'fetched'} {got.entry.name}  {got.path}")
    if failures:
        raise fetch_failure(
            failures,
            "\n".join(lines) + f"\n{len(failures)} of {len(entries)} entries could not be fetched",
        )
    return "\n".join(lines)


def htf_test_times(*, videos: str, out: str, pickle: str = "htf/imagetoframe") -> str:
    """``avprep htf-test-times``: HTF's annotated Flickr test frames as an ``--times`` CSV."""
    import csv
    import io

    from avprep.annotations.htf_frames import read_imagetoframe, times_rows
    from avprep.atomic import write_text
    from avprep.recipes import resolve_source
    from avprep.stages.extract import find_sources

    path, _ = resolve_source(pickle)
    frames = read_imagetoframe(path)
    sources, _ = find_sources(videos)
    rows, problems = times_rows(frames, {s.clip_id: s.path for s in sources})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["clip_id", "video", "frame", "time"])
    w.writerows(rows)
    write_text(out, buf.getvalue())
    text = f"{len(rows)} of {len(frames)} annotated clips written to {out}"
    if problems:
        text += f"\n{len(problems)} left out, e.g.:\n" + "\n".join(f"  {p}" for p in problems[:5])
    return text


def chaotic_world_prepare(*, root: str, out: str, duplicate_frames: str = "merge") -> str:
    """``avprep chaotic-world prepare``: clip table, --times files, id lists, test JSON."""
    from avprep.annotations.chaotic_prepare import prepare

    s = prepare(root, out, duplicate_frames=duplicate_frames)
    leak = s["leakage"]
    return (
        f"chaotic-world: {out}: videos train {s['train_videos']} test {s['test_videos']}, "
        f"annotated frames train {s['train_clips']} test {s['test_clips']}, "
        f"leakage {leak['frames']} frames, {leak['videos']} videos on both sides"
    )
