"""Training: what a run trains with, built in one place (parts.py: network, trainer, loss,
averaging, schedule), its loaders and whitening sample (loaders.py), the loop over contexts
(engine.py: fit and train_one_epoch, reporting through FitHooks), the run's hooks (reporting.py:
progress, logs, the checkpoint cadence, writes handed to a recorder), the optimizer and loss
(optim.py), the learning rate as a function of the step (schedules.py), lookahead averaging
(averaging.py), the epoch records (records.py) and the time-budget planner (budget.py).
Imports: MXNet, models, data (loaders.py), distributed.cluster, config, contexts, errors; not the
run directory (the recorder comes in through an interface).
"""
