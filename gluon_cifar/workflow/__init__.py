"""The jobs users run, end to end: train a run directory (train.py, with the time budget's phase in
budget.py), and turn one into submission.csv (submit.py). Scripts parse flags into a Config and
resolve contexts, then call these; tests call them too."""
from .resume import resume, resume_config
from .submit import Submission, submit
from .train import Trained, train

__all__ = ["Submission", "Trained", "resume", "resume_config", "submit", "train"]
