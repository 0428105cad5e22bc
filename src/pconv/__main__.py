import sys

from pconv.cli import main

sys.exit(main())
