"""Runs: the run directory (rundir.py: config, metrics, curves, parameters, the lock), its
checkpoints (checkpoint.py: save, check, restore), and the recorder that is a training's one
writer to both (recorder.py: RunRecorder, and NullRecorder for workers that write nothing).
Imports: training.records (the plain records it writes), config, atomic, errors.
"""
