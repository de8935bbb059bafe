"""Training: the loop over contexts (engine.py), lookahead averaging (averaging.py) and the time
budget planner (budget.py).
Imports: MXNet, GluonCV's schedulers, config and errors; not the data layout or the run directory.
"""
