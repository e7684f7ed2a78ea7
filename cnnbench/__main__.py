"""``python -m cnnbench``."""

from cnnbench.cli import main

main()
