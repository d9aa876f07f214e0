"""Pure numpy evaluation of the model and the service: AUC, drift, and counter arithmetic."""
