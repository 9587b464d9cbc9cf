import sys

from supervisor.cli import main

if __name__ == "__main__":  # also imported by spawned children as __mp_main__
    sys.exit(main())
