"""The folder pipeline: options (:mod:`.options`), the run (:mod:`.job`) and its stages
(:mod:`.stages`): path -> image -> tensor -> maps -> picture -> file, with a manifest."""
