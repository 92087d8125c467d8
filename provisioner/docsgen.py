"""Generate the reference parts of docs/ from the declarations they describe (R11): settings,
commands and attributes. `python -m provisioner.docsgen` rewrites them; tests fail when a
committed file differs from what this produces."""

from __future__ import annotations

import sys
from pathlib import Path

from provisioner.cli.registry import Registry
from provisioner.config import settings
from provisioner.hooks import Hooks, get_plugin_manager

DOCS = Path(__file__).resolve().parent.parent / "docs"


def configuration_md() -> str:
    out = [
        "# Configuration",
        "",
        "Settings come from, last wins: their default, the TOML file "
        "(`$PROVISIONER_HOME/provisioner.toml`, or the file named by `PROVISIONER_CONFIG`), and "
        "the environment variable `PROVISIONER_<NAME>`. In the file, keys may sit at the top "
        "level or under a section named as below; names are unique across sections.",
        "",
        "```toml",
        "[database]",
        'database_url = "postgresql+psycopg://provisioner:secret@db.example.org/cluster"',
        "```",
        "",
        "This file is generated from `provisioner/config.py` by `python -m provisioner.docsgen`.",
        "",
    ]
    from dataclasses import fields

    from provisioner.config import Config

    defaults = {f.name: f.default for f in fields(Config)}
    section = None
    for s in sorted(settings(), key=lambda s: s.section):
        if s.section != section:
            section = s.section
            out += [f"## [{section}]", ""]
        default = defaults[s.name]
        if isinstance(default, tuple):
            default = ",".join(default)
        shown = f"`{default}`" if str(default) not in ("", ".") else "empty"
        out += [f"### `{s.name}`", "", f"Environment: `{s.env}`. Default: {shown}.", "", s.doc, ""]
    return "\n".join(out)


def commands_md(registry: Registry) -> str:
    out = [
        "# Commands",
        "",
        "Every `rocks` command with its usage, as `rocks <command> help` prints it. Hosts are "
        "named by name, IP, MAC, appliance (all its hosts), `rackN`, glob, FQDN or alias. List "
        "commands take `output-format=json`, `output-header=no` and `output-col=a,b`.",
        "",
        "This file is generated from the command declarations by `python -m provisioner.docsgen`.",
        "",
    ]
    roll = None
    for ref in sorted(registry.refs.values(), key=lambda r: (r.roll != "base", r.roll, r.name)):
        if ref.roll != roll:
            roll = ref.roll
            out += [f"## Roll `{roll}`", ""]
        cls = registry.load(ref)
        out += [f"### rocks {ref.name}", "", "```", cls.usage(), "```", "", cls.summary(), ""]
        if cls.description():
            out += [cls.description(), ""]
        params = [p for p in cls.params]
        if cls.args or params:
            for a in cls.args:
                out.append(f"- `{a.usage()}`: {a.doc}")
            for p in params:
                out.append(f"- `{p.usage()}`: {p.doc}")
            out.append("")
        for cmd, what in cls.examples:
            out += [f"Example: {what}", "", "```", f"$ {cmd}", "```", ""]
    return "\n".join(out)


def attributes_md(hooks: Hooks) -> str:
    out = [
        "# Attributes",
        "",
        "Attributes are resolved per host from five levels, lowest first: I (intrinsic: "
        "hostname, rack, rank, appliance, membership), G (global, `rocks set attr`), O (per "
        "OS, `rocks set os attr`), A (per appliance, `rocks set appliance attr`) and H (per host, "
        "`rocks set host attr`; `os` and `arch` are the host's own properties). A later level "
        "overrides an earlier one; `rocks list host attr` shows the winning level as SOURCE, "
        "and `rocks report host attr` prints them as `key:value` lines (the site.attrs format).",
        "",
        "The documented attributes, with the defaults `rocks init frontend` sets when they are "
        "missing (network-derived ones are computed from the addresses it is given):",
        "",
        "| attribute | level | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for spec in sorted(hooks.register_attributes(), key=lambda s: s.name):
        default = "" if spec.default is None else f"`{spec.default}`" if spec.default else "empty"
        out.append(f"| `{spec.name}` | {spec.level} | {default} | {spec.doc} |")
    out += [
        "",
        "This file is generated from the rolls' attribute declarations by "
        "`python -m provisioner.docsgen`.",
        "",
    ]
    return "\n".join(out)


def generate() -> dict[Path, str]:
    hooks = Hooks(get_plugin_manager())
    return {
        DOCS / "configuration.md": configuration_md(),
        DOCS / "commands.md": commands_md(Registry(hooks.register_commands())),
        DOCS / "attributes.md": attributes_md(hooks),
    }


def main() -> int:
    for path, text in generate().items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
