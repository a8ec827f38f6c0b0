"""The install step of `make setup`: portproof and its dependencies, around the torch already installed.

An installed torch (often a vendor's build, with a torch_npu built against that exact torch) is never
changed: everything is installed under a pip constraint that holds torch and torch_npu at their installed
versions, and torchvision is the release built for that torch. torch and torchvision are installed only
where no torch is. Standard library only, as it runs before portproof's dependencies are installed.

    python tools/setup_env.py [--install REQUIREMENT] [-- PIP_OPTIONS...]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAIRING_FILE = ROOT / "src" / "portproof" / "torch_pairing.py"
CONSTRAINTS_FILE = Path(sys.prefix) / "portproof-constraints.txt"
PREFIX = "portproof setup:"


class SetupError(Exception):
    """Stops the set-up; its message is the one line the user reads."""


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    pairing = load_torch_pairing()
    try:
        install_torch_if_missing(pairing, args.pip_options)
        installed = read_installed(pairing)
        constraints = write_constraints(pairing.constraint_lines(installed))
        install_matching_torchvision(pairing, installed, constraints, args.pip_options)
        install_project(pairing, installed.torch, args.install, constraints, args.pip_options)
    except SetupError as error:
        print(f"{PREFIX} {error}", file=sys.stderr)
        return 1
    for warning in pairing.pairing_warnings(read_installed(pairing)):
        print(f"{PREFIX} WARNING: {warning}", file=sys.stderr)
    return 0


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", metavar="REQUIREMENT", help="what to install last, under the torch constraint "
                                                                 "(default: this checkout, editable, with its dev extra)")
    parser.add_argument("pip_options", nargs="*", metavar="PIP_OPTIONS",
                        help="passed to every pip install, after `--` (e.g. -- --no-index --find-links DIR)")
    args = parser.parse_args(argv)
    args.install = [args.install] if args.install else ["-e", f"{ROOT}[dev]"]
    return args


def load_torch_pairing():
    """portproof's torch_pairing module, loaded from its file: importing the package would need the very
    dependencies this script installs."""
    spec = importlib.util.spec_from_file_location("torch_pairing", PAIRING_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks the module up by name
    spec.loader.exec_module(module)
    return module


def read_installed(pairing):
    importlib.invalidate_caches()  # pip changed site-packages since the last read
    return pairing.read_installed()


def install_torch_if_missing(pairing, pip_options: list[str]) -> None:
    if read_installed(pairing).torch:
        return
    if importlib.util.find_spec("torch") is not None:
        raise SetupError("torch is importable but pip does not know its version (it has no package metadata), so "
                         "it cannot be held in place; install portproof's other dependencies by hand "
                         f"(`{shown(sys.executable)} -m pip install --no-deps -e .` and those in pyproject.toml)")
    print(f"{PREFIX} no torch installed; installing torch and torchvision")
    if run_pip(["torch", "torchvision"], pip_options).returncode != 0:
        raise SetupError("installing torch and torchvision failed (pip's message above); install them as "
                         "https://pytorch.org/get-started says, then rerun `make setup`")


def write_constraints(lines: list[str]) -> Path:
    """Written next to the environment it describes, atomically: pip reads it in the next step."""
    temporary = CONSTRAINTS_FILE.with_name(CONSTRAINTS_FILE.name + ".tmp")
    temporary.write_text("".join(f"{line}\n" for line in lines))
    os.replace(temporary, CONSTRAINTS_FILE)
    print(f"{PREFIX} holding {', '.join(lines)} ({shown(CONSTRAINTS_FILE)})")
    return CONSTRAINTS_FILE


def install_matching_torchvision(pairing, installed, constraints: Path, pip_options: list[str]) -> None:
    if installed.torchvision and pairing.torchvision_fits(installed):
        # the right release, but maybe for another build of this torch: it must import
        ensure_torchvision_imports(installed.torch, f"torchvision=={installed.torchvision}", constraints,
                                   installed.torchvision)
        return
    series = pairing.torchvision_series_for(installed.torch)
    if series is None:
        raise SetupError(f"cannot tell which torchvision is built for torch {installed.torch}; install it by hand "
                         f"(`{shown(sys.executable)} -m pip install -c {shown(constraints)} torchvision==<version>`), "
                         "then rerun `make setup`")
    requirement = f"torchvision=={series}.*"
    print(f"{PREFIX} installing {requirement}, the torchvision built for torch {installed.torch}")
    result = run_pip(["-c", str(constraints), requirement], pip_options, capture=True)
    ensure_torch_unchanged(pairing, installed.torch, requirement)
    if result.returncode != 0:
        raise SetupError(f"no torchvision {series}.* (the release built for torch {installed.torch}) could be "
                         f"installed ({first_error(result.stderr)}); install it yourself, from your vendor's index "
                         f"if it has one: `{shown(sys.executable)} -m pip install -c {shown(constraints)} "
                         f"'{requirement}'`, then rerun `make setup`; torch was left at {installed.torch}")
    ensure_torchvision_imports(installed.torch, requirement, constraints, installed.torchvision)


def ensure_torchvision_imports(torch_version: str, requirement: str, constraints: Path, previous: str | None) -> None:
    """A torchvision of the right release can still be built for another build of the same torch (PyPI's
    is the default build's; a +cpu torch needs the +cpu one), and then fails at import. Say so now, not at
    the first `portproof check`."""
    check = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True, text=True)
    if check.returncode == 0:
        return
    if previous is None:  # leave the environment as it was: without a torchvision
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", "torchvision"], capture_output=True)
    label = torch_version.partition("+")[2]
    index = f" --index-url https://download.pytorch.org/whl/{label}" if label else ""
    raise SetupError(f"the installed {requirement} does not import beside torch {torch_version} "
                     f"({first_error(check.stderr)}): it was built for another build of that torch; install the one "
                     f"built for yours, from your vendor's index if it has one: `{shown(sys.executable)} -m pip install "
                     f"-c {shown(constraints)} --force-reinstall --no-deps '{requirement}'{index}`, then rerun "
                     f"`make setup`; torch was left at {torch_version}")


def install_project(pairing, torch_version: str, install: list[str], constraints: Path, pip_options: list[str]) -> None:
    result = run_pip(["-c", str(constraints), *install], pip_options)
    ensure_torch_unchanged(pairing, torch_version, " ".join(install))
    if result.returncode != 0:
        raise SetupError(f"installing {' '.join(install)} failed (pip's message above); torch was left at "
                         f"{torch_version}")


def ensure_torch_unchanged(pairing, torch_version: str, step: str) -> None:
    """The constraint should make this impossible; checked anyway, because a changed torch breaks torch_npu."""
    now = read_installed(pairing).torch
    if now != torch_version:
        raise SetupError(f"torch changed from {torch_version} to {now} while installing {step}, despite the "
                         f"constraint; reinstall torch {torch_version} (your vendor's build if it came from one) "
                         "and please report this")


def run_pip(arguments: list[str], pip_options: list[str], capture: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", "install", "--quiet", *pip_options, *arguments]
    return subprocess.run(command, capture_output=capture, text=True)


def first_error(pip_output: str) -> str:
    """pip's first ERROR line (the reason; what follows is detail), else its last line."""
    lines = [line.strip() for line in pip_output.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    if errors:
        return errors[0]
    return lines[-1] if lines else "pip gave no reason"


def shown(path: str | Path) -> str:
    """A path as the user would type it from the current folder."""
    path, here = Path(path), Path.cwd()
    return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)


if __name__ == "__main__":
    sys.exit(main())
