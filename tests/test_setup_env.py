"""tools/setup_env.py in a throwaway venv, against hand-built stand-in torch and torchvision wheels in a local
folder (no network, no real wheels): an installed torch stays as it is and gets the torchvision built for it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SETUP_SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "setup_env.py"
INSTALLED_TORCH, INSTALLED_TORCH_NPU = "2.9.0+cpu", "2.9.0.post1"
# What an unconstrained `pip install torchvision` would pick: the newest, dragging torch 2.10.0 along.
NEWER_RELEASES = (("torch", "2.10.0", ()), ("torchvision", "0.25.0", ("torch==2.10.0",)))
MATCHING_TORCHVISION = ("torchvision", "0.24.0", ("torch==2.9.0",))
# Stands for `-e .[dev]`: depends, unpinned, on what the real project depends on.
STANDIN_PROJECT = ("standin_project", "1.0", ("torch>=2.1", "torchvision"))


def build_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = (), body: str = "") -> Path:
    """A minimal pure-Python wheel: a package whose __init__ holds __version__ (then `body`), and its metadata."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files = {
        f"{name}/__init__.py": f'__version__ = "{version}"\n' + body,
        f"{dist_info}/METADATA": metadata + "".join(f"Requires-Dist: {requirement}\n" for requirement in requires),
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: portproof-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},sha256={_digest(text)},{len(text.encode())}\n" for path, text in files.items())
    files[f"{dist_info}/RECORD"] = record + f"{dist_info}/RECORD,,\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def _digest(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()


def wheel_folder(folder: Path, *releases: tuple[str, str, tuple[str, ...]]) -> Path:
    folder.mkdir()
    for name, version, requires in releases:
        build_wheel(folder, name, version, requires)
    return folder


def pip_environment() -> dict[str, str]:
    """Without the machine's pip configuration (it may hold constraints or an index of its own)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    environment.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1",
                       PIP_NO_INPUT="1")
    return environment


def python_of(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / "python"


def pip(venv: Path, *arguments: str) -> None:
    subprocess.run([python_of(venv), "-m", "pip", *arguments], env=pip_environment(), check=True,
                   capture_output=True)


def installed_versions(venv: Path) -> dict[str, str]:
    """pip's view of the stand-ins in the venv, and the version of the torch module that actually imports."""
    code = ("import importlib.metadata as m, json, torch; names = ('torch', 'torch_npu', 'torchvision', "
            "'standin_project'); versions = {d.metadata['Name']: d.version for d in m.distributions() "
            "if d.metadata['Name'] in names}; versions['torch module'] = torch.__version__; print(json.dumps(versions))")
    result = subprocess.run([python_of(venv), "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def run_setup(venv: Path, wheels: Path) -> subprocess.CompletedProcess:
    command = [python_of(venv), SETUP_SCRIPT, "--install", STANDIN_PROJECT[0], "--", "--no-index", "--find-links", wheels]
    return subprocess.run(command, env=pip_environment(), capture_output=True, text=True, cwd=venv.parent, timeout=300)


@pytest.fixture(scope="module")
def template_venv(tmp_path_factory) -> Path:
    """A venv (without the system's packages) holding the stand-in torch 2.9.0+cpu and its torch_npu."""
    root = tmp_path_factory.mktemp("template")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    installed = wheel_folder(root / "installed", ("torch", INSTALLED_TORCH, ()),
                             ("torch_npu", INSTALLED_TORCH_NPU, ("torch==2.9.0",)))
    pip(venv, "install", "--no-index", "--find-links", str(installed), "torch_npu")
    return venv


@pytest.fixture
def venv(template_venv, tmp_path) -> Path:
    """A copy of the template, so each test starts from the same packages (python -m pip runs from a copy)."""
    copy = tmp_path / "venv"
    shutil.copytree(template_venv, copy, symlinks=True)
    return copy


def test_installs_the_torchvision_built_for_the_installed_torch_and_keeps_torch(venv, tmp_path):
    wheels = wheel_folder(tmp_path / "wheels", *NEWER_RELEASES, MATCHING_TORCHVISION, STANDIN_PROJECT)
    result = run_setup(venv, wheels)
    assert result.returncode == 0, result.stderr
    assert installed_versions(venv) == {"torch": INSTALLED_TORCH, "torch module": INSTALLED_TORCH,
                                        "torch_npu": INSTALLED_TORCH_NPU, "torchvision": "0.24.0",
                                        "standin_project": "1.0"}
    constraints = (venv / "portproof-constraints.txt").read_text()
    assert constraints == f"torch=={INSTALLED_TORCH}\ntorch_npu=={INSTALLED_TORCH_NPU}\n"


def test_replaces_a_torchvision_built_for_another_torch(venv, tmp_path):
    wheels = wheel_folder(tmp_path / "wheels", *NEWER_RELEASES, MATCHING_TORCHVISION, STANDIN_PROJECT)
    pip(venv, "install", "--no-deps", "--no-index", "--find-links", str(wheels), "torchvision==0.25.0")
    result = run_setup(venv, wheels)
    assert result.returncode == 0, result.stderr
    versions = installed_versions(venv)
    assert (versions["torchvision"], versions["torch"], versions["torch module"]) == ("0.24.0", INSTALLED_TORCH,
                                                                                      INSTALLED_TORCH)


def test_stops_in_one_line_when_no_torchvision_for_the_installed_torch_exists(venv, tmp_path):
    wheels = wheel_folder(tmp_path / "wheels", *NEWER_RELEASES, STANDIN_PROJECT)
    result = run_setup(venv, wheels)
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "torchvision 0.24.*" in message and "pip install" in message and "'torchvision==0.24.*'" in message
    assert f"torch was left at {INSTALLED_TORCH}" in message
    assert installed_versions(venv) == {"torch": INSTALLED_TORCH, "torch module": INSTALLED_TORCH,
                                        "torch_npu": INSTALLED_TORCH_NPU}


def test_installs_torch_and_torchvision_only_where_no_torch_is(venv, tmp_path):
    pip(venv, "uninstall", "--yes", "torch", "torch_npu")
    wheels = wheel_folder(tmp_path / "wheels", *NEWER_RELEASES, MATCHING_TORCHVISION, STANDIN_PROJECT)
    result = run_setup(venv, wheels)
    assert result.returncode == 0, result.stderr
    assert installed_versions(venv) == {"torch": "2.10.0", "torch module": "2.10.0", "torchvision": "0.25.0",
                                        "standin_project": "1.0"}
    assert (venv / "portproof-constraints.txt").read_text() == "torch==2.10.0\n"


def test_stops_in_one_line_when_the_matching_torchvision_does_not_import_beside_this_torch(venv, tmp_path):
    """PyPI's torchvision of the right release, built for the default build of torch, beside a +cpu torch:
    its import fails as the real one does ("operator torchvision::nms does not exist")."""
    wheels = wheel_folder(tmp_path / "wheels", STANDIN_PROJECT)
    build_wheel(wheels, "torchvision", "0.24.0", ("torch==2.9.0",),
                body='raise RuntimeError("operator torchvision::nms does not exist")\n')
    result = run_setup(venv, wheels)
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "does not import beside torch 2.9.0+cpu" in message and "operator torchvision::nms" in message
    assert "--index-url https://download.pytorch.org/whl/cpu" in message
    assert f"torch was left at {INSTALLED_TORCH}" in message
    assert installed_versions(venv) == {"torch": INSTALLED_TORCH, "torch module": INSTALLED_TORCH,
                                        "torch_npu": INSTALLED_TORCH_NPU}  # as it was: no torchvision


def test_an_installed_torchvision_of_the_right_release_that_does_not_import_stops_the_set_up(venv, tmp_path):
    """A second `make setup` after a broken install must not pass because the release number fits."""
    wheels = wheel_folder(tmp_path / "wheels", STANDIN_PROJECT)
    build_wheel(wheels, "torchvision", "0.24.0", ("torch==2.9.0",),
                body='raise RuntimeError("operator torchvision::nms does not exist")\n')
    pip(venv, "install", "--no-deps", "--no-index", "--find-links", str(wheels), "torchvision==0.24.0")
    result = run_setup(venv, wheels)
    assert result.returncode != 0 and "does not import beside torch 2.9.0+cpu" in result.stderr
    assert installed_versions(venv)["torchvision"] == "0.24.0"  # a torchvision that was there before stays
