"""The experiment harness (layer 1: imports the optimizer layer only): training configurations, data,
models, the trainer, the run store, job executors, training grids and notebook sweeps."""
