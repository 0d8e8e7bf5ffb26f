"""``python -m wcodec``: the command line (see wcodec.cli)."""
import sys

from .cli import main

sys.exit(main())
