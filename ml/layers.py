"""Custom Keras layers saved inside the model (registered for ``keras.saving.load_model``)."""
from __future__ import annotations

import keras
from keras import ops

__all__ = ["CaffePreprocess", "Standardize", "CUSTOM_OBJECTS"]

_PACKAGE = "neuroai_ml"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CaffePreprocess(keras.layers.Layer):
    """``keras.applications.{vgg16,resnet50}.preprocess_input`` as a layer.

    RGB 0..255 -> BGR with the ImageNet channel means subtracted ("caffe" mode), exactly what
    both backbones' ``preprocess_input`` do. Living inside the saved model, it cannot drift
    between training and serving.
    """

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, x):
        x = ops.cast(x, "float32")
        x = ops.flip(x, axis=-1)
        return x - ops.convert_to_tensor(self.MEAN_BGR, dtype="float32")

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Standardize(keras.layers.Layer):
    """Feature standardisation with fixed (non-trainable) mean and scale set from training features."""

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.mean = self.add_weight(shape=(dim,), initializer="zeros", trainable=False, name="mean")
        self.inv_std = self.add_weight(shape=(dim,), initializer="ones", trainable=False, name="inv_std")

    def call(self, x):
        return (x - self.mean) * self.inv_std

    def set_stats(self, mean, std, eps: float = 1e-6):
        import numpy as np

        mean = np.asarray(mean, dtype="float32")
        std = np.asarray(std, dtype="float32")
        self.mean.assign(mean)
        self.inv_std.assign(1.0 / np.maximum(std, eps))

    def compute_output_shape(self, input_shape):
        return input_shape


CUSTOM_OBJECTS = {"CaffePreprocess": CaffePreprocess, "Standardize": Standardize}
