"""Is the model still right: AUC over resolved predictions, drift of its inputs, and the jobs that run them."""
