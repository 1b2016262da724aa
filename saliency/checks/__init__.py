"""Checks of the maps themselves: the model-randomization sanity check (:mod:`.sanity`, its
metrics in :mod:`.sanity_metrics`, its CSV and figures in :mod:`.sanity_plots`)."""
