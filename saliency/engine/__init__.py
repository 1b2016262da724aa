"""The engine: rules at ReLU-family units (:mod:`.rules`), hooks on autograd nodes (:mod:`.hooks`),
the Grad-CAM layer (:mod:`.layers`), model state (:mod:`.state`), targets (:mod:`.targets`),
forward passes (:mod:`.passes`), the method template and registry (:mod:`.method`,
:mod:`.registry`), the pass planner (:mod:`.planner`) and SmoothGrad over it (:mod:`.smoothing`).
"""
