"""Package layout that pyproject.toml cannot express: the top-level ``pipelines/`` directory
ships inside the wheel as ``extract.pipelines`` (package data, read with importlib.resources)."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["extract", "extract.*"], exclude=["*.__pycache__"]), "extract.pipelines"],
    package_dir={"extract.pipelines": "pipelines"},
    package_data={"extract.pipelines": ["*.yaml"]},
)
