"""Find the fluke: a one-box detector, its evaluation, and crops for the identity stages."""
