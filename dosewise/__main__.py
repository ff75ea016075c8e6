import sys

from dosewise.cli import main

sys.exit(main())
