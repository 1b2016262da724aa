"""Does a map point at what the model uses? Faithfulness (deletion, insertion, ROAD) and class
sensitivity of maps, against a random and a centred map, batched on the model's device."""
