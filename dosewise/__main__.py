import sys

try:
    from dosewise.cli import main
except KeyboardInterrupt:  # Ctrl-C while still importing: no traceback, as main() would
    sys.exit(130)

sys.exit(main())
