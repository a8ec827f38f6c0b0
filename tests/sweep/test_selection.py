"""--models: a comma list, a file, timm's own filters, --limit; an empty selection is an error; each model's
run folder is a safe, distinct name."""

from __future__ import annotations

import pytest

from portproof.errors import ConfigError
from portproof.sweep.selection import run_folder, select_models


def test_a_comma_list_keeps_its_order_once_each_and_limit_takes_the_first():
    assert select_models(" resnet18, test_vit ,resnet18,,") == ("resnet18", "test_vit")
    assert select_models("a,b,c", limit=2) == ("a", "b")


def test_a_file_holds_one_model_per_line_with_comments(tmp_path):
    listed = tmp_path / "models.txt"
    listed.write_text("# the zoo\nresnet18   # a CNN\n\n  test_vit\n#test_resnet\n")
    assert select_models(str(listed)) == ("resnet18", "test_vit")


def test_a_timm_filter_uses_timms_list_models():
    import timm

    selected = select_models("timm:test_vit*,test_resnet")
    assert selected == tuple(timm.list_models(["test_vit*", "test_resnet"]))
    assert "test_vit" in selected and "test_resnet" in selected and "test_convnext" not in selected


@pytest.mark.parametrize("spec, words", [
    ("timm:no_such_family_*", "timm's registry has no model matching"),
    (" , ,", "--models names no model"),
    ("missing-list.txt", "does not exist"),
])
def test_an_empty_selection_is_an_error(spec, words):
    with pytest.raises(ConfigError, match=words):
        select_models(spec)


def test_a_file_of_comments_only_is_an_empty_selection(tmp_path):
    listed = tmp_path / "models.txt"
    listed.write_text("# nothing yet\n\n")
    with pytest.raises(ConfigError, match="names no model"):
        select_models(str(listed))


def test_run_folders_are_plain_names_or_safe_names_with_a_hash():
    assert run_folder("vit_tiny_patch16_224.augreg_in21k") == "vit_tiny_patch16_224.augreg_in21k"
    hub, hub_too = run_folder("timm/resnet18.a1_in1k"), run_folder("timm:resnet18.a1_in1k")
    assert hub.startswith("timm_resnet18.a1_in1k-") and hub_too.startswith("timm_resnet18.a1_in1k-")
    assert hub != hub_too  # two names never share a folder
    assert "/" not in run_folder("../../etc") and run_folder("..") != ".."
