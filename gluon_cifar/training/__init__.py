"""Training: what a run trains with, built in one place (parts.py: network, trainer, loss,
averaging), the loop over contexts (engine.py: fit and train_one_epoch, reporting through
FitHooks), the run's hooks (reporting.py: progress, logs, checkpoints handed to a recorder),
the optimizer and loss (optim.py), learning-rate schedules (schedules.py), lookahead averaging
(averaging.py), the epoch records (records.py) and the time-budget planner (budget.py).
Imports: MXNet, GluonCV's schedulers, models, distributed.cluster, config, contexts, errors; not
the data layout or the run directory (the recorder comes in through an interface).
"""
