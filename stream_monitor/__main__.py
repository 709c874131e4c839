"""`python -m stream_monitor` is the `stream-monitor` command."""

import sys

from stream_monitor.cli import main

sys.exit(main())
