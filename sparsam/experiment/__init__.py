"""The experiment harness (layer 1: imports the optimizer layer only): training configurations, data,
models, the trainer, the run store, job executors, training grids (also in time-boxed chunks) and notebook
sweeps."""
