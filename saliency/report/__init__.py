"""A static HTML report of an output folder: cards per image, thumbnails, the sanity check."""
