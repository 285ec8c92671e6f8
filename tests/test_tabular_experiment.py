"""One end-to-end Rossmann run on the tiny hand-made tables: features -> processor -> Learner."""

import math

import numpy as np
from test_tabular_features import write_tables

from lessonlib.tabular import features
from lessonlib.tabular.experiment import fit_sales_model


def test_fit_sales_model_runs_and_scores(tmp_path):
    train, _ = features.build(write_tables(tmp_path))
    rows = features.sales_rows(train)
    fit, valid = features.split(rows, ("2015-07-29", "2015-07-31"))
    run = fit_sales_model(fit, valid, ["Store", "DayOfWeek"], ["trend", "Promo"], epochs=2, lr=1e-2,
                          batch_size=4, layers=(8,), ps=(0.0,), show=False, device="cpu")
    assert math.isfinite(run.rmspe) and run.rmspe < 1.0  # sales ~1000 +- 10%: must not be wild
    assert len(run.learn.history) == 2 and run.seconds > 0
    assert run.proc.categories["Store"] == [1, 2]
    preds, _ = run.learn.get_preds()
    assert np.isfinite(preds.numpy()).all()
