"""jupyter_kernel_test's protocol suite on the session kernel: every sample that applies to a
Python kernel (execution, streams, errors, display data, completion, inspection, history,
is_complete, stdin, clear_output), answered by the real remote ipykernel through kflow's
proxy — on the local backend and on the test cluster."""

from __future__ import annotations

import os
import sys
import tempfile
import unittest

import pytest

jupyter_kernel_test = pytest.importorskip("jupyter_kernel_test")

from jupyter_client.manager import start_new_kernel

from kflow_testsupport import TestCluster

from .kernel_harness import NO_WHEEL, wheel_kernel_available

pytestmark = pytest.mark.timeout(600)


class _SessionKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "kflow-session"
    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    code_page_something = "print?"
    code_generate_error = "raise"
    code_execute_result = [{"code": "1+2+3", "result": "6"}, {"code": "[n*n for n in range(1, 4)]", "result": "[1, 4, 9]"}]
    code_display_data = [
        {"code": "from IPython.display import HTML, display; display(HTML('<b>test</b>'))", "mime": "text/html"},
        {"code": "from IPython.display import Math, display; display(Math('\\\\frac{1}{2}'))", "mime": "text/latex"},
    ]
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "search")
    code_inspect_sample = "zip"
    code_clear_output = "from IPython.display import clear_output; clear_output()"
    completion_samples = [{"text": "zi", "matches": {"zip"}}]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2"]
    invalid_code_samples = ["import = 7q"]

    env: dict = {}

    @classmethod
    def setUpClass(cls) -> None:
        cls._project = tempfile.TemporaryDirectory(prefix="kflow-session-kt-")
        cls.km, cls.kc = start_new_kernel(
            kernel_name=cls.kernel_name, cwd=cls._project.name, startup_timeout=60, env={**os.environ, **cls.env}
        )

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        cls._project.cleanup()

    def test_stdin(self) -> None:
        self.flush_channels()
        msg_id = self.kc.execute("x = input('name? ')\nprint('got', x)", allow_stdin=True)
        request = self.kc.get_stdin_msg(timeout=120)
        self.assertEqual(request["msg_type"], "input_request")
        self.assertEqual(request["content"]["prompt"], "name? ")
        self.kc.input("ada")
        reply = self.kc.get_shell_msg(timeout=60)
        self.assertEqual(reply["parent_header"]["msg_id"], msg_id)
        self.assertEqual(reply["content"]["status"], "ok")


@unittest.skipIf(not wheel_kernel_available(), NO_WHEEL)
class TestLocalSessionKernel(_SessionKernelTests):
    pass


@unittest.skipIf(not wheel_kernel_available(), NO_WHEEL)
class TestClusterSessionKernel(_SessionKernelTests):
    @classmethod
    def setUpClass(cls) -> None:
        cls._state = tempfile.TemporaryDirectory(prefix="kflow-session-kt-cluster-")
        cls._cluster = TestCluster(
            __import__("pathlib").Path(cls._state.name) / "cluster",
            ["--image-map", f"kflow-session-test=python:{sys.executable}"],
        )
        cls.env = {"KUBECONFIG": cls._cluster.kubeconfig, "KFLOW_BACKEND": "cluster", "KFLOW_DEFAULT_IMAGE": "kflow-session-test:1"}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        cls._cluster.stop()
        cls._state.cleanup()


del _SessionKernelTests
