"""The Rocks grammar: key=value params, trailing positionals, arguments, conversions, errors."""

from __future__ import annotations

import pytest

from provisioner.cli.command import Arg, Command, Param, parse_bool, parse_words
from provisioner.errors import UsageError


class SetThing(Command):
    name = "set thing attr"
    args = (Arg("host", "hosts", repeat=True),)
    params = (
        Param("attr", "name", required=True, positional=True),
        Param("value", "value", required=True, positional=True),
        Param("force", "flag", "bool", False),
    )


class AddThing(Command):
    name = "add thing"
    args = (Arg("host", "one host"),)
    params = (
        Param("iface", "device", required=True, positional=True),
        Param("mac", "mac", positional=True),
        Param("vlan", "vlan", "int"),
        Param("mode", "mode", "choice", "a", choices=("a", "b")),
    )


class Extra(Command):
    name = "init thing"
    extra_params = True
    params = (Param("attrs", "file"),)


class Listing(Command):
    name = "list thing"
    table = True
    args = (Arg("host", "hosts", optional=True, repeat=True),)


def test_trailing_words_fill_positional_params():
    args, params = parse_words(SetThing, ["compute-0-0", "x11", "true"])
    assert args == ["compute-0-0"]
    assert params["attr"] == "x11" and params["value"] == "true"


def test_key_value_and_positional_mix():
    args, params = parse_words(SetThing, ["a", "b", "value=v", "x11"])
    assert args == ["a", "b"]
    assert params == {"attr": "x11", "value": "v", "force": False}


def test_required_argument_keeps_its_word():
    # `set thing attr x11 true`: one word must stay a host, so only one parameter is filled
    # (the first missing, with the last word) and the other is reported missing.
    with pytest.raises(UsageError, match="missing parameter: value"):
        parse_words(SetThing, ["x11", "true"])


def test_partial_positionals_fill_in_declared_order():
    args, params = parse_words(AddThing, ["compute-0-0", "eth0"])
    assert args == ["compute-0-0"] and params["iface"] == "eth0" and params["mac"] is None


def test_values_keep_equal_signs_and_spaces():
    _, params = parse_words(SetThing, ["h", "attr=args", "value=ks ramdisk_size=150000 lang="])
    assert params["value"] == "ks ramdisk_size=150000 lang="


def test_unknown_parameter_names_the_command_and_the_known_ones():
    with pytest.raises(UsageError) as err:
        parse_words(SetThing, ["h", "colour=red", "a", "b"])
    assert "unknown parameter 'colour'" in str(err.value)
    assert "attr, value, force" in str(err.value)


def test_parameter_twice_is_an_error():
    with pytest.raises(UsageError, match="given twice"):
        parse_words(SetThing, ["h", "attr=a", "ATTR=b", "value=c"])


def test_keys_match_in_any_case():
    _, params = parse_words(SetThing, ["h", "ATTR=a", "Value=b"])
    assert params["attr"] == "a" and params["value"] == "b"


def test_conversions_and_their_errors():
    _, params = parse_words(AddThing, ["h", "eth0", "vlan=12", "mode=b"])
    assert params["vlan"] == 12 and params["mode"] == "b"
    with pytest.raises(UsageError, match="must be a whole number, not 'x'"):
        parse_words(AddThing, ["h", "eth0", "vlan=x"])
    with pytest.raises(UsageError, match="must be one of a, b, not 'c'"):
        parse_words(AddThing, ["h", "eth0", "mode=c"])
    with pytest.raises(UsageError, match="must be yes or no"):
        parse_words(SetThing, ["h", "a", "b", "force=maybe"])
    _, params = parse_words(SetThing, ["h", "a", "b", "force=YES"])
    assert params["force"] is True


def test_missing_argument_and_too_many():
    with pytest.raises(UsageError, match="missing argument: host"):
        parse_words(AddThing, ["iface=eth0"])
    # Trailing words fill iface and mac first; what is left over is reported.
    with pytest.raises(UsageError, match="unexpected argument 'eth0' for 'rocks add thing'"):
        parse_words(AddThing, ["h", "eth0", "mac", "extra"])


def test_extra_params_keep_their_case():
    _, params = parse_words(Extra, ["Kickstart_PublicAddress=1.2.3.4", "attrs=f"])
    assert params["Kickstart_PublicAddress"] == "1.2.3.4" and params["attrs"] == "f"


def test_table_commands_take_output_params():
    _, params = parse_words(Listing, ["output-format=json", "output-header=no", "output-col=a"])
    assert params["output-format"] == "json"
    assert params["output-header"] is False
    assert params["output-col"] == "a"
    with pytest.raises(UsageError):
        parse_words(SetThing, ["h", "a", "b", "output-format=json"])


def test_usage_is_generated_from_the_declaration():
    assert AddThing.usage() == (
        "rocks add thing {host} iface=string [mac=string] [vlan=int] [mode=a|b]"
    )
    assert "[output-format=table|json]" in Listing.usage()


@pytest.mark.parametrize("word,value", [("y", True), ("On", True), ("no", False), ("0", False)])
def test_bool_words(word, value):
    assert parse_bool(word) is value
    assert parse_bool("perhaps") is None
