import sys

from sde.cli import main

sys.exit(main())
