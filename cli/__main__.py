"""``python -m saliency_cli``: the same as the ``saliency`` command."""

from saliency_cli.app import main

main()
