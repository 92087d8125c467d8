"""Test helpers for this project and for roll authors: a throw-away PostgreSQL server and a
pytest plugin (`pytest_plugins = ["provisioner.testing.pytest_plugin"]`) with fixtures that give
each test a fresh cluster database on SQLite and on PostgreSQL, and an in-process `rocks`."""
