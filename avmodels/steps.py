"""Pipeline steps of avmodels: ``avmodels train`` and ``avmodels eval`` as library calls.

Registered in :data:`avprep.steps.STEPS` (imported only when a recipe names
them); they take the commands' option values with the commands' defaults and
return the text the commands print. See :mod:`avprep.steps`.
"""

from __future__ import annotations

from avmodels.model_file import model_file_of  # noqa: F401 - importers read it from here


def train(
    *,
    method: str | None = None,
    data: list[str] | None = None,
    out: str | None = None,
    val: list[str] | None = None,
    val_fraction: float | None = None,
    select_on_test: list[str] | None = None,
    annotations: str | None = None,
    benchmark: str | None = None,
    config: str | None = None,
    set: list[str] | None = None,  # noqa: A002 - the option's name
    resume: str | None = None,
    overwrite: bool = False,
    device: str | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> str:
    """``avmodels train``: a new run into ``out``, or ``resume`` an unfinished one."""
    from avmodels.engine.train import train as run_train
    from avmodels.engine.train_session import option_sets, train_request

    res = run_train(
        train_request(
            method=method, data=data, out=out, resume=resume, val=val, val_fraction=val_fraction,
            select_on_test=select_on_test, annotations=annotations, benchmark=benchmark,
            config_file=config, sets=option_sets(set or [], device=device, seed=seed),
            overwrite=overwrite, progress=progress,
        )
    )  # fmt: skip
    best = ""
    if res.select:
        score = "n/a" if res.best_score is None else f"{res.best_score:.4f}"
        best = f", best {res.select} {score} (epoch {res.best_epoch})"
    return (
        f"{res.method}: {res.run_dir}, {res.epochs_done} epochs ({res.steps} steps){best}; "
        f"model {res.model_file}"
    )


def evaluate(
    *,
    data: list[str],
    benchmark: str,
    annotations: str,
    run: str | None = None,
    ckpt: str | None = None,
    preset: str | None = None,
    ids: str | None = None,
    report: str | None = None,
    device: str = "auto",
    batch_size: int = 32,
    workers: int = 2,
    amp: str = "none",
    allow_missing: bool = False,
    progress: bool = True,
) -> str:
    """``avmodels eval`` (the standard protocol): score a trained model on test shards."""
    from avmodels.engine.evaluate import evaluate_listed

    model, result, _ = evaluate_listed(
        run, ckpt, data, benchmark, annotations, ids=ids, preset=preset, report_dir=report,
        device=device, batch_size=batch_size, num_workers=workers, amp=amp,
        allow_missing=allow_missing, progress=progress,
    )  # fmt: skip
    scores = "  ".join(
        f"{k} {getattr(result, k):.4f}" for k in ("ciou", "auc", "mean_iou", "pointing")
    )
    return f"{model}: preset {result.preset}, {result.n} clips  {scores}"
