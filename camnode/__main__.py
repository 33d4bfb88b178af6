"""`python -m camnode ...` is the `camnode` command (web workers are started this way)."""

import sys

from camnode.cli import main

sys.exit(main())
