"""Generic training machinery (Lightning): loaders, the method-wrapping module, checkpoints, runs."""
