"""Meta-training of the encoder (LoRA on its top layers) and of the service's inner loop.

Modules: ``features`` (cached lower-layer token states), ``model`` (LoRA top layers and
the learned inner loop), ``algorithms`` (ProtoNets, FOMAML, Reptile, MAML through the
head, Meta-SGD), ``trainer`` (outer loop, early stopping, resume), ``validation``
(meta-validation, inner-loop calibration), ``search`` (Optuna), ``evaluation``
(held-out data sets, bare vs checkpoints), ``report`` (manifest, metrics, plots).
Nothing here is imported by the server.
"""
