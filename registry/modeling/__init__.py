"""The modelling side: part base classes, the assembled model, tasks, training and metrics.

- parts.py          Encoder and Head, the base classes plugins subclass (re-exported by registry.plugin_api)
- tasks.py          what a head predicts: its label window, answer type and evaluation
- shop_model.py     ShopModel: encoder + head behind one checked boundary; save/load of a version
- training_plan.py  how a training run is sized (cutoffs, users, rows)
- training.py       the training loop, splits and devices
- metrics.py        the metric functions reports and promotion use
"""
