"""The exception tree is grouped the way users act on it, and library messages speak to Python callers
(settings, paths) while the CLI shows its own flags."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from portproof import errors
from portproof.config import CheckConfig, InputSpec, ModelSpec, WeightsSpec
from portproof.session import Session


@pytest.mark.parametrize("kind, group", [
    (errors.ConfigError, errors.UsageError), (errors.ModelNotFoundError, errors.UsageError),
    (errors.WeightsError, errors.UsageError), (errors.InputError, errors.UsageError),
    (errors.SummaryError, errors.UsageError), (errors.DeviceUnavailableError, errors.PlatformError),
    (errors.OutputError, errors.PlatformError), (errors.ReferenceRunError, errors.RunError),
    (errors.LayerPassError, errors.RunError),
])
def test_each_error_belongs_to_the_group_a_user_acts_on(kind, group):
    assert issubclass(kind, group) and issubclass(group, errors.PortproofError)
    others = {errors.UsageError, errors.PlatformError, errors.RunError} - {group}
    assert not any(issubclass(kind, other) for other in others)


def test_for_cli_adds_the_flag_wording_only_when_there_is_one():
    assert errors.WeightsError("bad file; fix it", cli_hint="--weights PATH").for_cli() == "bad file; fix it (--weights PATH)"
    assert errors.WeightsError("bad file; fix it").for_cli() == "bad file; fix it"


def partial_checkpoint(tmp_path):
    path = tmp_path / "partial.safetensors"
    save_file({"unrelated.weight": torch.ones(2)}, str(path))
    return str(path)


@pytest.mark.parametrize("settings, flag", [
    (lambda tmp: dict(weights=WeightsSpec(source="auto", offline=True, require_pretrained=True)), "--weights PATH"),
    (lambda tmp: dict(weights=WeightsSpec(source=str(tmp / "absent.safetensors"))), "--weights auto"),
    (lambda tmp: dict(weights=WeightsSpec(source=partial_checkpoint(tmp))), "--allow-partial-weights"),
    (lambda tmp: dict(weights=WeightsSpec(source="random"), inputs=InputSpec(source=str(tmp / "no-folder"))), None),
])
def test_messages_from_library_code_name_no_command_line_flag(tmp_path, settings, flag):
    with pytest.raises(errors.UsageError) as info:
        Session(CheckConfig(model=ModelSpec("test_vit"), targets=(), **settings(tmp_path)))
    assert "--" not in str(info.value)
    if flag:
        assert flag in info.value.for_cli()
