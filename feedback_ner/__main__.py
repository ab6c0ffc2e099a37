"""``python -m feedback_ner <command> [options]``: the same dispatcher as the ``feedback-ner`` console script."""

import sys

from feedback_ner.cli import main

if __name__ == "__main__":
    sys.exit(main())
