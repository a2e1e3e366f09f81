"""`python -m textlstm` (what torchrun launches) is the same as the `textlstm` script."""

from textlstm.cli import main

if __name__ == "__main__":
    main()
