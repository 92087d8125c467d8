"""Shared fixtures come from the plugin roll authors use too."""

pytest_plugins = ["provisioner.testing.pytest_plugin"]
