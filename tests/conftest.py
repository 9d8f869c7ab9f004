"""Shared pytest wiring: the lab fixtures (tests/lab/fixture.py)."""

pytest_plugins = ["tests.lab.fixture"]
