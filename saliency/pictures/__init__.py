"""Pictures: one map drawn over its photo (:mod:`.render`), and comparison figures
(:mod:`.figures`)."""
