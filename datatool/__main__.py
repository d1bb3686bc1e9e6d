"""``python -m datatool``: the same command line as the ``datatool`` script."""

from datatool.cli import main

if __name__ == "__main__":
    main()
