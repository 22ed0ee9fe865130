"""`python -m ganvas ...`: the `ganvas` command, for environments without its script."""

from ganvas.cli import main

if __name__ == "__main__":
    main()
