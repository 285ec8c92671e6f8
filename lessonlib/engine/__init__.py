"""The training engine, the same for every lesson: what turns a model and its loaders into a trained model.

    learner      Learner: fit -> one_epoch -> one_batch -> step, evaluate/get_preds, layer groups; adamw
    training     TrainConfig (epochs, lr, bs, wd, clip, precision) and build_learner, the one factory
    callbacks    Callback and its events (with_events, the Cancel exceptions) and the small callbacks:
                 Recorder, Scheduler, NanCheck, Distributed, GradientClip, GradNorm
    schedule     one-cycle and constant LR/momentum schedules
    lr_finder    the LR range test, a callback run through fit
    checkpoint   atomic checkpoints with every random state: exact resume
    distributed  torchrun/DDP glue: process group, sharded loaders, summed metrics
    numerics     what this machine computes in: training precision, autocast, the numerics identity

Imports nothing of the lessons (dropout, tabular, text).
"""
