"""The one command table (node/wire.py): the dispatcher, REST and MQTT all read it, and a
command without a handler or a schema stops the node from being built."""

from __future__ import annotations

import pytest

from camnode.node import schemas, wire
from camnode.node.dispatcher import INTERNAL, CommandTableError, check_table
from camnode.web import handlers


def _handlers() -> dict:
    return {c.name: (lambda payload: None) for c in wire.COMMANDS}


def test_rest_forwards_exactly_the_public_commands_of_the_table():
    assert handlers.PUBLIC_COMMANDS == {c.name for c in wire.COMMANDS if c.public}
    assert "viewers/report" not in handlers.PUBLIC_COMMANDS
    assert INTERNAL == {"viewers/report", "picture/request", "transport/refresh"}


def test_every_command_has_a_schema_file():
    for c in wire.COMMANDS:
        assert schemas.has_schema(c.schema), c.name


def test_a_complete_table_passes_the_start_up_check():
    assert check_table(_handlers())["roi/add"] == "commands/roi.add"


def test_a_missing_schema_fails_start_up_naming_the_file(monkeypatch):
    real = schemas.has_schema
    monkeypatch.setattr("camnode.node.dispatcher.has_schema",
                        lambda name: name != "commands/roi.add" and real(name))
    with pytest.raises(CommandTableError, match=r"roi/add: no schema file "
                                                r"schemas/commands/roi\.add\.schema\.json"):
        check_table(_handlers())


def test_a_command_without_a_handler_fails_start_up():
    h = _handlers()
    del h["snapshot"]
    with pytest.raises(CommandTableError, match="snapshot: no handler"):
        check_table(h)


def test_a_handler_missing_from_the_table_fails_start_up():
    with pytest.raises(CommandTableError, match="roi/rename: handler without an entry"):
        check_table({**_handlers(), "roi/rename": lambda p: None})


def test_the_dispatcher_answers_every_public_command_and_lists_them(tmp_path):
    from tests.unit.test_dispatcher import REPO  # noqa: F401  (same config as there)
    from camnode.node.dispatcher import Dispatcher

    class FakeNode:  # the dispatcher only reads the node in handlers
        pass

    d = Dispatcher(FakeNode())
    assert d.commands == sorted(handlers.PUBLIC_COMMANDS)
