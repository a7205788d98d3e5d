"""What a run prints about its config: a few lines by default, the whole tree on request."""

from __future__ import annotations

import pytest

from alexnet_lightning.console import print_config_tree
from alexnet_lightning.errors import UserError


def test_the_default_is_the_groups_chosen_and_the_overrides_typed(make_cfg, capsys) -> None:
    print_config_tree(make_cfg("optimizer=sgd", "optimizer.lr=0.01", "experiment=digits_fast"))
    assert capsys.readouterr().out.splitlines() == [
        "config: model=alexnet dataset=digits optimizer=sgd scheduler=onecycle trainer=default callbacks=default "
        "logger=tensorboard paths=default experiment=digits_fast",
        "overrides: optimizer=sgd optimizer.lr=0.01 experiment=digits_fast",
        "print_config=full shows the whole config",
    ]


def test_full_prints_every_setting_and_none_nothing(make_cfg, capsys) -> None:
    print_config_tree(make_cfg("print_config=full"))
    full = capsys.readouterr().out
    assert "weight_decay" in full and "max_epochs" in full and "auto_epochs" in full
    print_config_tree(make_cfg("print_config=none"))
    assert capsys.readouterr().out == ""
    print_config_tree(make_cfg(), mode="full")  # a caller may choose, whatever the config says
    assert "weight_decay" in capsys.readouterr().out


def test_an_unknown_mode_is_one_line(make_cfg) -> None:
    with pytest.raises(UserError, match=r"^print_config='tree' is unknown: use short, full or none$"):
        print_config_tree(make_cfg("print_config=tree"))
