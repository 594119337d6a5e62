"""Speaker excursion: conventional baselines (linear model, impedance tracking), metrics, and the
network pipeline built on them."""
