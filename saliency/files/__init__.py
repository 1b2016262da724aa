"""Files in and out: reading images (:mod:`.images`), collecting inputs (:mod:`.inputs`), atomic
writes and the manifest (:mod:`.outputs`)."""
