"""jupyter_kernel_test's protocol suite: every reply and iopub message is validated against the
message schemas. Cells run as real jobs on kflow-core's local backend."""

from __future__ import annotations

import pytest

REQS = "pip install jupyter_client jupyter_kernel_test nbclient nbformat ipykernel (tests/requirements.txt)"
pytest.importorskip("jupyter_kernel_test", reason=REQS)
pytest.importorskip("jupyter_client", reason=REQS)

import tempfile
import unittest

import jupyter_kernel_test
from jupyter_client.manager import start_new_kernel

from .kernel_harness import NO_DEV, NO_WHEEL, dev_binary, wheel_kernel_available


class _KflowKernelTests(jupyter_kernel_test.KernelTests):
    language_name = "python"
    file_extension = ".py"

    # A cell is a training job: its stdout is the job's log.
    code_hello_world = "print('hello, world')"
    # A pod log merges the job's stdout and stderr; the kernel puts warning and error lines
    # (by kflow-core's severity) on stderr.
    code_stderr = "import warnings\nwarnings.warn('careful')"
    # SystemExit prints nothing, so the job's failure is the one output.
    code_generate_error = "raise SystemExit(3)"
    code_execute_result = [{"code": "%kflow namespace=team-a", "result": "namespace=team-a"}]
    code_history_pattern = "%kflow*"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "%kflow_run"

    completion_samples = [
        {"text": "%kflow_l", "matches": {"%kflow_logs"}},
        {"text": "%kflow wor", "matches": {"workers="}},
        {"text": "%kflow kind=t", "matches": {"tf"}},
        {"text": "zi", "matches": {"zip"}},
    ]
    complete_code_samples = ["print('hello, world')", "x = 1", "%kflow gpu=1", "for i in range(3):\n    print(i)\n"]
    incomplete_code_samples = ["for i in range(3):", "x = (1,", 's = """abc', "x = 1 + \\"]
    invalid_code_samples = ["x = )", "(]", "s = 'abc"]

    @classmethod
    def setUpClass(cls) -> None:
        # Each class gets its own notebook folder: the kernel's cwd is the project.
        cls._project = tempfile.TemporaryDirectory(prefix="kflow-kt-")
        cls.km, cls.kc = start_new_kernel(kernel_name=cls.kernel_name, cwd=cls._project.name, startup_timeout=30)

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        cls._project.cleanup()


@unittest.skipIf(dev_binary() is None, NO_DEV)
class TestDevKernel(_KflowKernelTests):
    kernel_name = "kflow-dev"


@unittest.skipIf(not wheel_kernel_available(), NO_WHEEL)
class TestWheelKernel(_KflowKernelTests):
    kernel_name = "kflow"


@unittest.skipIf(dev_binary() is None, NO_DEV)
class TestProcessRunnerKernel(_KflowKernelTests):
    """The plain runner: real stderr, no packaging; keeps the protocol honest on its own."""

    kernel_name = "kflow-dev-process"
    code_stderr = "import sys; print('oops', file=sys.stderr)"


del _KflowKernelTests
