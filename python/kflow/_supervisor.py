"""`python -m kflow._supervisor RUN_DIR`: the detached process that runs one local job."""

import sys

from ._native import supervise


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m kflow._supervisor RUN_DIR", file=sys.stderr)
        return 2
    return supervise(sys.argv[1])


if __name__ == "__main__":
    sys.exit(main())
