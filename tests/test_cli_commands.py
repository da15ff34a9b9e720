"""Commands that other distributions add to `cvat-aa` (`cvat_aa.commands`), and the sandbox stub.

cvat-aa-testing adds ``sandbox`` this way, so the core never imports the test server.
"""

from __future__ import annotations

import pytest
from cvat_aa import cli, plugins
from cvat_aa.cli import main

HELLO_COMMAND = """
    def register(commands):
        parser = commands.add_parser("hello", help="say hello")
        parser.add_argument("--name", default="world")
        parser.set_defaults(run=lambda args: print(f"hello, {args.name}") or 0)
"""


def test_a_distribution_adds_a_command(make_distribution, capsys):
    make_distribution(
        "cvat-aa-hello",
        modules={"hello_command": HELLO_COMMAND},
        entry_points={plugins.COMMANDS_GROUP: {"hello": "hello_command:register"}},
    )
    assert main(["hello", "--name", "CVAT"]) == 0
    assert capsys.readouterr().out == "hello, CVAT\n"


@pytest.mark.parametrize(
    ("module", "source", "error"),
    [
        ("import_fails", "import no_such_module_anywhere\n", "ModuleNotFoundError: No module"),
        ("exits", "def register(commands):\n    raise SystemExit(3)\n", "SystemExit: 3"),
        ("not_callable", "register = None\n", "TypeError: 'NoneType' object is not callable"),
    ],
)
def test_a_broken_command_is_a_warning_and_the_others_still_work(
    make_distribution, capsys, module, source, error
):
    make_distribution(
        "cvat-aa-broken-command",
        version="0.3",
        modules={f"broken_command_{module}": source},
        entry_points={plugins.COMMANDS_GROUP: {"broken": f"broken_command_{module}:register"}},
    )
    make_distribution(
        "cvat-aa-hello",
        modules={"hello_command": HELLO_COMMAND},
        entry_points={plugins.COMMANDS_GROUP: {"hello": "hello_command:register"}},
    )
    assert main(["hello"]) == 0
    out, err = capsys.readouterr()
    assert out == "hello, world\n"
    assert (
        "command 'broken' from cvat-aa-broken-command 0.3 failed to load and is skipped: "
        + error
    ) in err


def test_ctrl_c_while_a_command_registers_is_not_swallowed(make_distribution):
    make_distribution(
        "cvat-aa-slow-command",
        modules={"slow_command": "def register(commands):\n    raise KeyboardInterrupt\n"},
        entry_points={plugins.COMMANDS_GROUP: {"slow": "slow_command:register"}},
    )
    with pytest.raises(KeyboardInterrupt):
        cli.build_parser()


def test_a_command_cannot_take_the_name_of_a_core_command(make_distribution, capsys):
    make_distribution(
        "cvat-aa-impostor",
        modules={"impostor": HELLO_COMMAND.replace('"hello"', '"functions"')},
        entry_points={plugins.COMMANDS_GROUP: {"functions": "impostor:register"}},
    )
    assert main(["functions", "list", "--json"]) == 0
    assert "command 'functions' from cvat-aa-impostor 1.0 failed to load" in capsys.readouterr().err


def test_the_sandbox_comes_from_cvat_aa_testing(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["sandbox", "--help"])
    assert exit.value.code == 0
    assert "--labels-from FUNCTION" in capsys.readouterr().out


@pytest.mark.parametrize("args", [[], ["--port", "8080", "--images", "photos/"], ["--help"]])
def test_without_cvat_aa_testing_the_sandbox_says_what_to_install(monkeypatch, capsys, args):
    monkeypatch.setattr(cli, "load_command_plugins", lambda commands: [])
    assert main(["sandbox", *args]) == 2
    assert capsys.readouterr().err == (
        "cvat-aa: error: cvat-aa sandbox needs the cvat-aa-testing distribution:"
        " pip install 'cvat-aa[testing]'\n"
    )
