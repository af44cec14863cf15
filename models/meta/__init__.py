"""Meta-training of the encoder (LoRA on its top layers) and of the service's inner loop.

Modules: ``features`` (cached lower-layer token states), ``model`` (LoRA top layers and
the learned inner loop), ``algorithms`` (ProtoNets, FOMAML, Reptile, MAML through the
head, Meta-SGD), ``trainer`` (outer loop, early stopping), ``state`` (resume files), ``validation``
(meta-validation, inner-loop calibration), ``search`` (Optuna), ``evaluation``
(held-out data sets, bare vs checkpoints, leakage check), ``tables`` (CIs, markdown,
PNG), ``report`` (manifest, metrics, learning curve), ``data`` (data sets and caches).
Nothing here is imported by the server.
"""
