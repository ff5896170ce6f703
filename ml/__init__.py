"""NeuroAI machine-learning pipeline: plain Python + TensorFlow/Keras, no Django.

Image intake, model builders, training, evaluation, artifacts, batched inference
and explanations. Command line: ``python -m ml --help``.
"""
