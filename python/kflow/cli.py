"""The `kflow` console script. The command line itself is Rust (clap); this hands it argv."""

import sys

from ._native import cli_main


def main() -> None:
    argv = ["kflow", *sys.argv[1:]]
    sys.exit(cli_main(argv))


if __name__ == "__main__":
    main()
