"""``python -m lightning_dd`` is the same as the ``lightning-dd`` console script."""

from lightning_dd.cli import main

if __name__ == "__main__":
    main()
