"""The `kflow` console script. The command line itself is Rust (clap); this hands it argv."""

import sys

from ._native import cli_main


def main() -> None:
    argv = ["kflow", *sys.argv[1:]]
    try:
        code = cli_main(argv)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
