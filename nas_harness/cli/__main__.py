import sys

from nas_harness.cli import main

sys.exit(main())
