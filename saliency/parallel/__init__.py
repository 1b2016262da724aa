"""Spreading one run over many processes: shards of the inputs, torchrun process groups, and
merging the processes' manifests."""
