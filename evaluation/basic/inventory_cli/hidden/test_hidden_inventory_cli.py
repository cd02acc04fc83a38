import json

import pytest
from inventory_cli.cli import main


def last_line(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_main_adds_items_and_prints_their_counts(tmp_path, capsys):
    assert main([str(tmp_path / "inv.json"), "Bolt, nut, bolt"]) == 0
    assert last_line(capsys) == {"bolt": 2, "nut": 1}


def test_counts_accumulate_across_calls(tmp_path, capsys):
    store = str(tmp_path / "inv.json")
    main([store, "bolt"])
    main([store, "BOLT, washer"])
    assert last_line(capsys) == {"bolt": 2, "washer": 1}


def test_without_text_the_current_counts_are_printed(tmp_path, capsys):
    store = str(tmp_path / "inv.json")
    main([store, "nut"])
    assert main([store]) == 0
    assert last_line(capsys) == {"nut": 1}


def test_without_a_store_it_exits_with_status_2():
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
