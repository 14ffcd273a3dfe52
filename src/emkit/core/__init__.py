"""The EM engine: the one loop (:mod:`~emkit.core.engine`) with its options, typed state and
results, the convergence monitor, step rules (plain EM, SQUAREM), checkpoints, online (stepwise)
EM and atomic file writes. Nothing here knows a particular model."""
