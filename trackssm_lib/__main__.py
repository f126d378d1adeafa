"""`python -m trackssm_lib ...`"""
import sys

from trackssm_lib.cli import main

sys.exit(main())
