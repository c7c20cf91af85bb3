"""``tf.compat.v1`` names that differ from their TF2 namesakes (``bridge.compat.v1.estimator``)."""
