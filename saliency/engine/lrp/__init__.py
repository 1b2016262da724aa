"""Layer-wise Relevance Propagation on the hook engine: rules at every convolution and linear
layer (:mod:`.rules`), the calls a forward pass made (:mod:`.record`), the plan that gives each
node of its autograd graph a rule (:mod:`.plan`), the composites that choose the rules
(:mod:`.composites`) and the backward pass that carries relevance (:mod:`.propagate`)."""
