"""``python -m ocean``: the same as the ``ocean`` command."""
import sys

from .cli import main

sys.exit(main())
