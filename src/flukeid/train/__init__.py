"""Training stage: identity losses, the Lightning module and the training loop."""
