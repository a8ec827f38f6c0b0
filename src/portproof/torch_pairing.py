"""Which torchvision and torch_npu belong to the installed torch, and the pip constraints that hold torch there.

Standard library only: tools/setup_env.py loads this file by path before portproof (or anything else) is
installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata

# torch 2.N pairs with torchvision 0.(N + 15): 2.0 -> 0.15, 2.9 -> 0.24, 2.14 -> 0.29.
TORCHVISION_MINOR_OFFSET = 15
RELEASE = re.compile(r"\d+(?:\.\d+)*")
TORCH_EXACT_PIN = re.compile(r"^torch\s*\(?\s*==\s*([^\s,;)]+)")


@dataclass(frozen=True)
class InstalledTorch:
    """Versions as pip knows them, local label included (2.9.0+cpu), since constraints are compared with these;
    they can differ from torch.__version__ (PyPI's torch 2.9.0 says 2.9.0+cu128 there). None: not installed."""

    torch: str | None
    torchvision: str | None = None
    torchvision_requires: tuple[str, ...] = ()
    torch_npu: str | None = None


def read_installed() -> InstalledTorch:
    torchvision = _distribution("torchvision")
    return InstalledTorch(
        torch=_version_of(_distribution("torch")),
        torchvision=_version_of(torchvision),
        torchvision_requires=tuple(torchvision.requires or ()) if torchvision else (),
        torch_npu=_version_of(_distribution("torch_npu")),
    )


def constraint_lines(installed: InstalledTorch) -> list[str]:
    """pip constraints that keep torch, and torch_npu (built against one exact torch), as they are."""
    pins = (("torch", installed.torch), ("torch_npu", installed.torch_npu))
    return [f"{name}=={version}" for name, version in pins if version]


def torchvision_series_for(torch_version: str) -> str | None:
    """The torchvision series built for a torch version ("2.9.0+cpu" -> "0.24"); None outside torch 2."""
    major, minor = _major_minor(torch_version)
    return f"0.{minor + TORCHVISION_MINOR_OFFSET}" if major == 2 else None


def torch_series_for(torchvision_version: str) -> str | None:
    """The torch series a torchvision version pairs with ("0.29.1" -> "2.14"); None before torchvision 0.15."""
    major, minor = _major_minor(torchvision_version)
    return f"2.{minor - TORCHVISION_MINOR_OFFSET}" if major == 0 and minor >= TORCHVISION_MINOR_OFFSET else None


def exact_torch_pin(requires: tuple[str, ...]) -> str | None:
    """The torch version a distribution's Requires-Dist pins exactly (`torch==2.9.0` -> "2.9.0"), else None."""
    for requirement in requires:
        pin = TORCH_EXACT_PIN.match(requirement)
        if pin:
            return public_version(pin[1])
    return None


def torchvision_fits(installed: InstalledTorch) -> bool:
    """Whether the installed torchvision was built for the installed torch: by its exact torch pin where it has
    one (official wheels do), else by its series. True when either is missing or the series is unknown."""
    if not (installed.torch and installed.torchvision):
        return True
    pin = exact_torch_pin(installed.torchvision_requires)
    if pin:
        return pin == public_version(installed.torch)
    expected = torchvision_series_for(installed.torch)
    return expected is None or _major_minor(installed.torchvision) == _major_minor(expected)


def pairing_warnings(installed: InstalledTorch) -> list[str]:
    """One line per installed package that does not belong to the installed torch, saying what to install."""
    warnings = []
    if not torchvision_fits(installed):
        warnings.append(_torchvision_warning(installed))
    if installed.torch and installed.torch_npu and release_of(installed.torch_npu) != release_of(installed.torch):
        warnings.append(f"torch_npu {installed.torch_npu} is built for torch {release_of(installed.torch_npu)}, not "
                        f"for the installed torch {installed.torch}; install the torch and torch_npu your vendor "
                        "ships together")
    return warnings


def _torchvision_warning(installed: InstalledTorch) -> str:
    built_for = exact_torch_pin(installed.torchvision_requires) or torch_series_for(installed.torchvision)
    pairs_with = f" (it pairs with torch {built_for})" if built_for else ""
    series = torchvision_series_for(installed.torch)
    advice = (f"install torchvision {series}.* (pip install -c <(portproof env --constraints) 'torchvision=={series}.*')"
              if series else "install the torchvision built for it")
    return (f"torchvision {installed.torchvision} is not built for the installed torch {installed.torch}{pairs_with}; "
            f"{advice}")


def public_version(version: str) -> str:
    """The version without its local label: "2.9.0+cpu" -> "2.9.0"."""
    return version.partition("+")[0]


def release_of(version: str) -> str:
    """The release numbers alone: "2.9.0.post1" -> "2.9.0", "2.10.0rc1+cpu" -> "2.10.0"."""
    match = RELEASE.match(version)
    return match[0] if match else version


def _major_minor(version: str) -> tuple[int, int]:
    numbers = [int(part) for part in release_of(version).split(".") if part.isdigit()] + [0, 0]
    return numbers[0], numbers[1]


def _distribution(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def _version_of(distribution: metadata.Distribution | None) -> str | None:
    return distribution.version if distribution else None
