"""A lab of real systemd-booted Debian nodes (systemd-nspawn) for integration tests.

python -m tests.lab up [--nodes N] [--suite SUITE ...]
python -m tests.lab status
python -m tests.lab restart NAME
python -m tests.lab down

The package imports nothing itself: which lab tests/lab/config.py describes is chosen when
it is first imported (see LAB there), and `python -m tests.lab.benchmark` must be able to
choose the test lab after this package is loaded and before config is.
"""
