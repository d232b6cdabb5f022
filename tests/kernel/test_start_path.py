"""What the kernel's start path loads: `import kflow` is this package's __init__ alone, and the
kernel launcher adds only the native module (the figures are in bench/bench_import.py and
bench/bench_kernel.py; here, which modules, so a new eager import is caught)."""

from __future__ import annotations

import json
import subprocess
import sys

import kflow

PROBE = "import sys, json; {body}; print(json.dumps(sorted(sys.modules)))"


def modules_after(body: str) -> set:
    out = subprocess.run([sys.executable, "-S", "-c", PROBE.format(body=body)], check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": ":".join(p for p in sys.path if p)})
    return set(json.loads(out.stdout))


def test_import_kflow_loads_only_its_init():
    bare = modules_after("pass")
    added = modules_after("import kflow") - bare
    assert added == {"kflow"}


def test_the_kernel_launcher_loads_no_argparse_or_typing():
    added = modules_after("import kflow.kernel as k; k.connection_file(['-f', 'x.json']); from kflow import _native") - modules_after("pass")
    assert not added & {"argparse", "typing", "json.decoder", "dataclasses", "kflow._api", "kflow._job"}
    assert {"kflow", "kflow.kernel", "kflow._native"} <= added


def test_every_public_name_is_still_there_on_first_use():
    for name in kflow.__all__:
        assert getattr(kflow, name) is not None, name
    assert kflow.Job.__module__ == "kflow._job" and issubclass(kflow.JobNotFoundError, kflow.KflowError)
    assert set(kflow.__all__) <= set(dir(kflow))


def test_the_launcher_parses_its_arguments_and_says_what_is_wrong():
    from kflow.kernel import connection_file

    assert connection_file(["-f", "a.json"]) == "a.json"
    assert connection_file(["--connection-file=b.json"]) == "b.json"
    assert connection_file(["-fc.json"]) == "c.json"
    r = subprocess.run([sys.executable, "-m", "kflow.kernel", "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown argument '--bogus'" in r.stderr and "usage:" in r.stderr
