"""Kept so that `from gluon_cifar.model import resnet18` (the book's, and users' notebooks) works:
the networks live in gluon_cifar.models."""
from .models import Residual, build_model, check_model_name, resnet18  # noqa: F401
