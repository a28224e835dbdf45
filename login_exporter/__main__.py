"""``python -m login_exporter``: the same program as the ``login-exporter`` console script."""

import sys

from login_exporter.cli import main

sys.exit(main())
