"""The kflow Jupyter kernel's launcher: `python -m kflow.kernel -f {connection_file}` (the
kernelspec's argv). The kernel itself is Rust (kflow._native.kernel_main); this package only
passes it the connection file. The kernelspec ships in the wheel's data dir; `kflow kernel
install` (the Rust CLI) writes an absolute-path one for other setups.

It imports nothing but `sys`, `os` and the native module: every kernel start pays for what it
imports (argparse and typing alone would cost more than the rest of the start)."""

import os
import sys

USAGE = "usage: python -m kflow.kernel [--session] -f CONNECTION_FILE"


def _usage(problem):
    sys.stderr.write(f"{USAGE}\nkflow.kernel: {problem}\n")
    raise SystemExit(2)


def parse(argv):
    """(connection file, session mode) from `[--session] -f FILE` (also `--connection-file FILE`
    or `--connection-file=FILE`)."""
    session = "--session" in argv
    return connection_file([a for a in argv if a != "--session"]), session


def connection_file(argv):
    """The connection file of `-f FILE`, `--connection-file FILE` or `--connection-file=FILE`."""
    found = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            sys.stdout.write(
                f"{USAGE}\n\nRuns the kflow Jupyter kernel on the connection file jupyter_client wrote.\n"
                "--session: cells run in one long-lived remote Python (a kflow session).\n"
            )
            raise SystemExit(0)
        if arg in ("-f", "--connection-file"):
            if i + 1 >= len(argv):
                _usage(f"{arg} needs the connection file")
            found = argv[i + 1]
            i += 2
            continue
        if arg.startswith("--connection-file="):
            found = arg.split("=", 1)[1]
        elif arg.startswith("-f") and len(arg) > 2:
            found = arg[2:]
        else:
            _usage(f"unknown argument {arg!r}")
        i += 1
    if not found:
        _usage("give the connection file with -f")
    return found


def main(argv=None) -> int:
    path, session = parse(sys.argv[1:] if argv is None else argv)
    # Reported as language_info.version; the local backend's jobs run with this interpreter.
    os.environ.setdefault("KFLOW_PYTHON_VERSION", "%d.%d.%d" % sys.version_info[:3])
    from kflow import _native

    _native.kernel_main(path, session)
    return 0
