"""Settings: defaults, TOML file, environment, errors; docs/configuration.md lists them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.config import Config, settings
from provisioner.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults():
    c = Config.load(env={})
    assert c.home == Path("/var/lib/provisioner")
    assert c.db_url == "sqlite:////var/lib/provisioner/provisioner.db"
    assert c.eval_enabled is False
    assert c.site_profiles_dir == Path("/var/lib/provisioner/site-profiles")


def test_file_then_environment(tmp_path):
    (tmp_path / "provisioner.toml").write_text(
        '[database]\ndatabase_url = "postgresql+psycopg://u@h/db"\ndatabase_timeout = 5\n'
        '[plugins]\ndisabled_plugins = ["xen"]\n'
    )
    c = Config.load(env={"PROVISIONER_HOME": str(tmp_path)})
    assert c.database_url == "postgresql+psycopg://u@h/db" and c.database_timeout == 5
    assert c.disabled_plugins == ("xen",)
    c = Config.load(
        env={
            "PROVISIONER_HOME": str(tmp_path),
            "PROVISIONER_DATABASE_TIMEOUT": "9",
            "PROVISIONER_EVAL_ENABLED": "yes",
        }
    )
    assert c.database_timeout == 9 and c.eval_enabled is True


def test_errors_name_the_setting_and_file(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text("colour = 'red'\n")
    with pytest.raises(ConfigError, match=f"unknown setting 'colour' in {cfg}"):
        Config.load(env={"PROVISIONER_CONFIG": str(cfg)})
    with pytest.raises(ConfigError, match="bad value for setting 'database_timeout'"):
        Config.load(env={"PROVISIONER_DATABASE_TIMEOUT": "soon"})
    cfg.write_text("this is = not toml [")
    with pytest.raises(ConfigError, match=str(cfg)):
        Config.load(env={"PROVISIONER_CONFIG": str(cfg)})


def test_every_setting_is_documented():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    for s in settings():
        assert f"`{s.name}`" in doc, f"setting {s.name} is not in docs/configuration.md"
        assert s.env in doc, f"{s.env} is not in docs/configuration.md"
