"""A non-editable install carries the metadata registry and the pipeline recipes.

The wheel is built from a copy of the source (nothing is written into the
checkout), installed into a fresh virtual environment that sees the test
environment's packages (``--system-site-packages`` of this interpreter's
venv, ``--no-deps``: nothing is downloaded, torch is not reinstalled), and its
``avprep`` script is run from an empty folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
FOLDERS = ("avprep", "avmodels", "metadata", "pipelines")


def _copy_source(dst: Path) -> Path:
    dst.mkdir()
    for name in SOURCES:
        shutil.copy2(ROOT / name, dst / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_shipped")
    for name in FOLDERS:
        shutil.copytree(ROOT / name, dst / name, ignore=ignore)
    return dst


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, **kw)


@pytest.mark.slow
def test_wheel_ships_registry_and_recipes(tmp_path):
    import importlib.util

    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed in this environment (the wheel is built offline)")
    src = _copy_source(tmp_path / "src")
    wheels = tmp_path / "wheels"
    res = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "-q", "-w", str(wheels), str(src)])  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = wheels.glob("avprep-*.whl")
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    assert "avprep/_shipped/metadata/registry.yaml" in names
    assert "avprep/_shipped/pipelines/synthav.yaml" in names
    shipped = {n for n in names if n.startswith("avprep/_shipped/pipelines/")}
    assert len(shipped) == len(list((ROOT / "pipelines").glob("*.yaml")))

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    # the new venv's "system" packages are this interpreter's base; add the test venv's
    site = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    target = next((env_dir / "lib").glob("python*/site-packages"))
    (target / "test-env.pth").write_text(site + "\n")
    res = _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                "--no-index", "-q", str(wheel)])  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AVPREP_METADATA")}
    env["AVPREP_HOME"] = str(tmp_path / "home")
    where = _run([str(py), "-c", "import avprep, avprep.catalog as c; "
                  "print(avprep.__file__); print(c.metadata_dir())"], cwd=empty, env=env)  # fmt: skip
    assert where.returncode == 0, where.stderr
    pkg, meta = where.stdout.split()
    assert str(env_dir) in pkg and str(env_dir) in meta  # the installed copy, not the checkout
    avprep = env_dir / "bin" / "avprep"
    listed = _run([str(avprep), "metadata", "list"], cwd=empty, env=env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "vggss/test-5158" in listed.stdout
    plan = _run([str(avprep), "run", "synthav", "--dry-run"], cwd=empty, env=env)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "pipeline synthav" in plan.stdout and " synth out=" in plan.stdout  # the first stage
    assert not any(empty.iterdir())  # a dry run writes nothing
