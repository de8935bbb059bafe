"""Inference: streamed prediction and submission.csv (predict.py), export to MXNet symbol or ONNX
with a check on real images (export.py).
Imports: data (to read test images), training.engine (prediction with TTA), atomic, errors.
"""
