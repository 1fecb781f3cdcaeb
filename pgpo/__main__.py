import sys

from pgpo.cli import main

sys.exit(main())
