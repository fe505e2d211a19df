"""``python -m avprep``: the same as the ``avprep`` command."""

from avprep.cli import main

if __name__ == "__main__":
    main()
