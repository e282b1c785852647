import sys

from mrrp.evaluate.faithfulness.cli import main

sys.exit(main())
