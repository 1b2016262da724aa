"""Models: building classifiers by name (:mod:`.loading`), listing them (:mod:`.listing`),
checkpoints and labels (:mod:`.checkpoints`), devices (:mod:`.devices`), and the preprocessing
with its exact geometry back to the photo (:mod:`.preprocess`)."""
