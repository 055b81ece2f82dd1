"""``python -m streamlet.cli``."""

from .app import main

if __name__ == "__main__":
    main()
