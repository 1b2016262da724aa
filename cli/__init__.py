"""The saliency command-line interface (installed as the package ``saliency_cli``)."""
