"""Tests of the kflow Jupyter kernel and the %kflow_run magic (a package, so its conftest does not shadow tests/conftest.py)."""
