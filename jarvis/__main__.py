import sys

from jarvis.frontends.cli import main

sys.exit(main())
