"""``python -m syncd``: the same as the ``syncd`` command."""

from .cli import main

if __name__ == "__main__":
    main()
