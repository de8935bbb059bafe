"""Inference: a trained network loaded back (network.py), class predictions with test-time views
(tta.py), streamed prediction and submission.csv (predict.py), export to MXNet symbol or ONNX
checked on real images (export.py).
Imports: data (to read test images), models, config, contexts, atomic, errors; nothing of training
or runs.
"""
