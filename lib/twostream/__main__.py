import sys

from twostream.cli.main import main

sys.exit(main())
