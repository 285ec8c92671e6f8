"""lessonlib: the small library behind the lesson notebooks (dropout, tabular embeddings, text models).

    engine/   the training loop and what it needs (Learner, callbacks, schedules, LR finder, checkpoints,
              distributed training, numerics)
    layers/   fast layers (OneDNNLinear, SmallPDropout) and the one dropout mask
    data/     the datasets, fetched into a cache
    dropout   notebook 01's experiments; tabular/ Rossmann (02-03); text/ IMDB (04-05)
    core, plots, parallel, bow, calibration, widgets: what more than one lesson uses

The names below are the public API, importable from here (`from lessonlib import Learner`); each loads
its module on first use, so `import lessonlib` stays cheap.
"""

import importlib

__version__ = "0.1.0"

_WHERE = {
    "lessonlib.engine.learner": ["Learner", "accuracy", "adamw"],
    "lessonlib.engine.training": ["TrainConfig", "build_learner", "with_train"],
    "lessonlib.engine.callbacks": ["Callback", "CancelBatchException", "CancelEpochException",
                                   "CancelFitException", "GradientClip", "GradNorm"],
    "lessonlib.core": ["seed_everything", "default_device", "eval_mode", "banner"],
    "lessonlib.data": ["imdb", "imdb_reviews", "rossmann"],
    "lessonlib.parallel": ["run_parallel"],
    "lessonlib.tabular.model": ["TabularConfig", "TabularModel"],
    "lessonlib.tabular.experiment": ["SalesConfig", "fit_sales_model"],
    "lessonlib.text.lm": ["LMConfig", "LM_PRESETS", "lm_data", "lm_learner", "trained_lm_path"],
    "lessonlib.text.classifier": ["TextClassifier", "classifier_from_lm", "load_classifier"],
    "lessonlib.text.fine_tune": ["FineTuneConfig", "train_classifier"],
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'lessonlib' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *__all__])
