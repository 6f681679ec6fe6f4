"""The model and solver core (needs torch): the score network, the SDE, samplers, the guided solver, the prior
(checkpoint loading and saving, the authors' released weights) and the typed task result."""
