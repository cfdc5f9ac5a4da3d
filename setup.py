"""Package layout that pyproject.toml cannot express statically.

The top-level ``devices/`` and ``montages/`` folders are the human-edited source
of device profiles and electrode sets; they are installed inside the package
(``physioaffect._devices``, ``physioaffect._montages``) so that a wheel install
finds them as well as an editable one.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["physioaffect", "physioaffect.*"])
    + ["physioaffect._devices", "physioaffect._montages"],
    package_dir={
        "physioaffect._devices": "devices",
        "physioaffect._montages": "montages",
    },
    package_data={
        "physioaffect._devices": ["*.toml"],
        "physioaffect._montages": ["*.toml"],
    },
)
