"""Ship the repository's metadata registry and pipeline recipes inside the wheel.

The files have one home, ``metadata/`` and ``pipelines/`` at the repository
root (where they are edited and reviewed). A build copies them into the
package as ``avprep/_shipped/metadata`` and ``avprep/_shipped/pipelines``, so a
non-editable ``pip install .`` finds them (see ``avprep/shipped.py``). Every
other setting is in ``pyproject.toml``.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"metadata": ("*.yaml", "*.md"), "pipelines": ("*.yaml",)}


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the repository's own folders
        for folder, patterns in SHIPPED.items():
            target = Path(self.build_lib) / "avprep" / "_shipped" / folder
            self.mkpath(str(target))
            for pattern in patterns:
                for src in sorted((ROOT / folder).glob(pattern)):
                    self.copy_file(str(src), str(target / src.name))


setup(cmdclass={"build_py": BuildPyWithData})
