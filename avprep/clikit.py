"""Click plumbing shared by the ``avprep`` and ``avmodels`` command lines.

Subcommands are imported lazily (``avprep --help`` does not import torch),
errors a user can act on are printed without a traceback, and logging is
configured once.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

from avprep.errors import AvprepError

log = logging.getLogger(__name__)


class LazyGroup(click.Group):
    """A click group whose subcommands live in other modules, imported on use.

    ``lazy`` maps a command name to ``"package.module:attribute"``.
    """

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        # A command whose module is not installed (a partial install) is not listed.
        present = {n for n, t in self.lazy.items() if importlib.util.find_spec(t.split(":")[0])}
        return sorted(set(super().list_commands(ctx)) | present)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return adapt(getattr(importlib.import_module(module), attr))
        return super().get_command(ctx, name)


def _verbose_after(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    if value:
        root = ctx.find_root()
        setup_logging(int(root.params.get("verbose") or 0) + value, bool(root.params.get("debug")))


def example_of(cmd: click.Command) -> str | None:
    """An example call from a command's help (continuation lines joined): the first
    that names the command, else the first."""
    lines = (cmd.help or "").splitlines()
    calls: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip().lower().startswith("example"):
            continue
        parts: list[str] = []
        for nxt in lines[i + 1 :]:
            text = nxt.strip()
            if not text:
                break
            parts.append(text.rstrip("\\").strip())
            if not text.endswith("\\"):
                calls.append(" ".join(parts))
                parts = []
        break
    named = [c for c in calls if f" {cmd.name} " in f" {c} "]
    return (named or calls or [None])[0]


def missing_required(cmd: click.Command, args: list[str]) -> list[click.Option]:
    """The required options of ``cmd`` that ``args`` does not give (none with --help)."""
    given: set[str] = set()
    for a in args:
        if a == "--":
            break
        if a in ("-h", "--help"):
            return []
        if a.startswith("-"):
            given.add(a.split("=", 1)[0])
    out = []
    for p in cmd.params:
        if not isinstance(p, click.Option) or not p.required:
            continue
        if given & {*p.opts, *p.secondary_opts}:
            continue
        envvars = [p.envvar] if isinstance(p.envvar, str) else list(p.envvar or ())
        if any(os.environ.get(e) for e in envvars):
            continue
        out.append(p)
    return out


def _all_missing_at_once(cmd: click.Command) -> None:
    """Report every missing required option in one message, with an example call."""
    if getattr(cmd, "_avprep_missing_checked", False):
        return
    parse = cmd.parse_args

    def parse_args(ctx: click.Context, args: list[str]) -> list[str]:
        missing = missing_required(cmd, list(args))
        if len(missing) > 1 or (missing and example_of(cmd)):
            names = ", ".join(max(p.opts, key=len) for p in missing)
            word = "option" if len(missing) == 1 else "options"
            example = example_of(cmd)
            hint = f"\nexample: {example}" if example else ""
            raise click.UsageError(f"missing required {word}: {names}{hint}", ctx)
        return parse(ctx, args)

    cmd.parse_args = parse_args  # type: ignore[method-assign]
    cmd._avprep_missing_checked = True  # type: ignore[attr-defined]


def adapt(cmd: click.Command) -> click.Command:
    """One grammar for every subcommand: ``-v`` after it, all missing options at once."""
    with_verbose(cmd)
    if isinstance(cmd, click.Group):
        get = cmd.get_command
        if not getattr(cmd, "_avprep_adapted", False):
            cmd.get_command = lambda ctx, name: (  # type: ignore[method-assign]
                None if (c := get(ctx, name)) is None else adapt(c)
            )
            cmd._avprep_adapted = True  # type: ignore[attr-defined]
    else:
        _all_missing_at_once(cmd)
    return cmd


def with_verbose(cmd: click.Command) -> click.Command:
    """Accept ``-v/--verbose`` after the subcommand too (``avmodels train -v ...``)."""
    if any(opt in ("-v", "--verbose") for p in cmd.params for opt in p.opts):
        return cmd
    cmd.params.append(
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            is_eager=True,
            callback=_verbose_after,
            help="More log output (-vv for debug); also accepted before the command.",
        )
    )
    return cmd


def choice_option(*decls: str, names: Iterable[str], **kw: Any) -> Callable:
    """A ``click.option`` whose value must be one of ``names`` (from a registry).

    Case-sensitive; ``--help`` lists the choices and a wrong value gets
    click's "is not one of ..." message.
    """
    return click.option(*decls, type=click.Choice(list(names)), **kw)


NO_PROGRESS = "avprep.no_progress"


def no_progress_option(f: Callable) -> Callable:
    """``--no-progress`` without a parameter of its own: read it with :func:`progress_wanted`."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        ctx.meta[NO_PROGRESS] = bool(value)

    return click.option(
        "--no-progress",
        is_flag=True,
        expose_value=False,
        callback=remember,
        help="No progress bars (they are off anyway when stderr is not a terminal).",
    )(f)


def progress_wanted() -> bool:
    """Progress bars unless ``--no-progress`` was given or stderr is not a terminal."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get(NO_PROGRESS):
        return False
    return sys.stderr.isatty()


def benchmark_option(*decls: str, extra: Iterable[str] = (), **kw: Any) -> Callable:
    """``--benchmark`` checked against the annotation formats avprep reads (plus ``extra``)."""
    from avprep.annotations.benchmarks import BENCHMARKS

    kw.setdefault("help", "Annotation format of the ground truth.")
    return choice_option(*(decls or ("--benchmark",)), names=[*BENCHMARKS.names(), *extra], **kw)


def backend_options(workers: str = "workers") -> Callable:
    """``--backend`` (one of :data:`avprep.runner.BACKENDS`, default loky) and ``--scheduler``.

    ``workers`` names what runs there in the help (``"shard writers"``).
    """
    from avprep.runner import BACKENDS

    def decorate(f: Callable) -> Callable:
        f = click.option(
            "--scheduler",
            default=None,
            help="Dask scheduler address, e.g. tcp://host:8786 (with --backend dask).",
        )(f)
        return choice_option(
            "--backend",
            names=BACKENDS,
            default="loky",
            show_default=True,
            help=f"Where the {workers} run: loky (processes here), dask, serial (debugging).",
        )(f)

    return decorate


#: Loggers shown at INFO even at the default level: a long command's heartbeat
#: (one line per training epoch).
TALKING_LOGGERS = ("avmodels.epochs",)


def setup_logging(verbose: int = 0, debug: bool = False) -> None:
    level = logging.DEBUG if debug or verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    for name in TALKING_LOGGERS:
        logging.getLogger(name).setLevel(min(level, logging.INFO))


def run_cli(group: click.Group, prog: str) -> Callable[[], None]:
    """Return a ``main()`` that runs ``group`` with friendly error handling."""

    def main() -> None:
        debug = "--debug" in sys.argv[1:]
        try:
            group.main(prog_name=prog, standalone_mode=False)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo(
                "interrupted: finished work is kept; rerun the same command to resume", err=True
            )
            sys.exit(130)
        except AvprepError as exc:
            if debug:
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return main
