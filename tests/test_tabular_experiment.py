"""One end-to-end Rossmann run on the tiny hand-made tables: features -> processor -> Learner."""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from lessonlib.engine.callbacks import GradientClip
from lessonlib.engine.training import TrainConfig
from lessonlib.tabular import features
from lessonlib.tabular.experiment import SalesConfig, fit_sales_model, lesson_style_rmspe
from lessonlib.tabular.loader import frame_loader
from lessonlib.tabular.model import TabularConfig, exp_rmspe, rmspe_log_scale
from lessonlib.tabular.preprocess import TabularProcessor


def toy_config(epochs: int) -> SalesConfig:
    return SalesConfig(model=TabularConfig(layers=(8,), ps=(0.0,)),
                       train=TrainConfig(epochs=epochs, lr=1e-2, bs=4, clip=1.0))


@pytest.fixture
def small_run(tmp_path, write_tables):
    train, _ = features.build(write_tables(tmp_path))
    fit, valid = features.split(features.sales_rows(train), ("2015-07-29", "2015-07-31"))
    cfg = toy_config(epochs=2)
    cats, conts = ["Store", "DayOfWeek"], ["trend", "Promo"]
    run = fit_sales_model(fit, valid, TabularProcessor(cats, conts), cfg, show=False, device="cpu")
    return run, fit, valid


def test_fit_sales_model_beats_one_level_for_every_row(small_run):
    run, fit, valid = small_run
    log_valid = torch.tensor(np.log(valid["Sales"].to_numpy()))
    constant = torch.full_like(log_valid, float(np.log(fit["Sales"]).mean()))
    assert run.rmspe < exp_rmspe(constant, log_valid).item()


def test_fit_sales_model_records_one_history_row_per_epoch_and_its_time(small_run):
    run, _, _ = small_run
    assert len(run.learn.history) == 2 and run.seconds > 0


def test_fit_sales_model_codes_categories_from_the_training_rows(small_run):
    run, _, _ = small_run
    assert run.proc.categories["Store"] == [1, 2]


def test_fit_sales_model_clips_the_gradient_norm_by_default(small_run):
    clips = [cb.max_norm for cb in small_run[0].learn.callbacks if isinstance(cb, GradientClip)]
    assert clips == [1.0]


def test_fit_sales_model_predicts_finite_sales(small_run):
    run, _, _ = small_run
    preds, _ = run.predict(run.learn.valid_dl)
    assert np.isfinite(preds.numpy()).all()


def test_fit_sales_model_fits_the_rmspe_scale_on_training_rows_only(tmp_path, write_tables):
    train, _ = features.build(write_tables(tmp_path))
    fit, valid = features.split(features.sales_rows(train), ("2015-07-29", "2015-07-31"))
    cfg = toy_config(epochs=2)
    kw = dict(show=False, device="cpu", seed=3)
    cats, conts = ["Store", "DayOfWeek"], ["trend", "Promo"]
    plain = fit_sales_model(fit, valid, TabularProcessor(cats, conts), replace(cfg, rmspe_scale=False), **kw)
    scaled = fit_sales_model(fit, valid, TabularProcessor(cats, conts), cfg, **kw)
    assert plain.model.log_scale.item() == 0.0
    shift = scaled.model.log_scale.item()
    train_dl = frame_loader(plain.proc, fit, batch_size=64)
    assert shift == pytest.approx(rmspe_log_scale(*plain.predict(train_dl)), abs=1e-6)
    valid_plain, targ = plain.predict(plain.learn.valid_dl)
    valid_scaled, _ = scaled.predict(scaled.learn.valid_dl)
    torch.testing.assert_close(valid_scaled, valid_plain + shift)  # same seed, same network, shifted
    assert scaled.rmspe == pytest.approx(exp_rmspe(valid_scaled, targ).item())


def test_fit_sales_model_caps_predictions_per_store_from_training_rows(tmp_path, write_tables):
    train, _ = features.build(write_tables(tmp_path))
    fit, valid = features.split(features.sales_rows(train), ("2015-07-29", "2015-07-31"))
    cfg = toy_config(epochs=1)
    kw = dict(show=False, device="cpu")
    columns = ["Store", "DayOfWeek"], ["trend", "Promo"]
    run = fit_sales_model(fit, valid, TabularProcessor(*columns), cfg, **kw)
    model = run.model
    best = np.log(fit.groupby("Store")["Sales"].max())
    codes = run.proc.codes(pd.DataFrame({"Store": best.index}), "Store")
    np.testing.assert_allclose(model.log_cap[codes].numpy(), best.to_numpy() + 0.2, rtol=1e-6)
    assert model.log_cap[0].item() == pytest.approx(best.max() + 0.2, rel=1e-6)  # unknown store
    preds, _ = run.predict(run.learn.valid_dl)
    cats, _ = run.proc.transform(valid)
    assert (preds <= model.log_cap[torch.from_numpy(cats[:, 0])] + 1e-6).all()
    plain = fit_sales_model(fit, valid, TabularProcessor(*columns), replace(cfg, cap_by=None), **kw)
    assert plain.model.log_cap is None
    with pytest.raises(ValueError, match="cap_by='Region' is not one of the categorical columns"):
        fit_sales_model(fit, valid, TabularProcessor(*columns), replace(cfg, cap_by="Region"), **kw)


def test_lesson_style_rmspe_batches_rows_newest_date_first_then_by_store():
    valid = pd.DataFrame({"Date": pd.to_datetime(["2014-08-01", "2014-08-02", "2014-08-01", "2014-08-02"]),
                          "Store": [1, 1, 2, 2], "Sales": [100.0, 100.0, 100.0, 100.0]})
    pred = np.log([150.0, 100.0, 150.0, 100.0])  # both 2014-08-01 rows are off by 50%
    # file order (08-02, 1), (08-02, 2), (08-01, 1), (08-01, 2): batches of 2 are [0, 0] and [50%, 50%];
    # in the given order they would be [50%, 0] twice (0.354)
    assert lesson_style_rmspe(pred, valid, batch_size=2) == pytest.approx((0.0 + 0.5) / 2)
    assert lesson_style_rmspe(pred, valid, batch_size=4) == pytest.approx(math.sqrt(0.5 / 4))


def test_fit_sales_model_leaves_the_trained_network_in_the_mode_fit_leaves_it(small_run):
    run, _, valid = small_run
    assert run.learn.model.training  # as after any Learner.fit; Run.model's predictions set eval mode
    preds, _ = run.predict(frame_loader(run.proc, valid, batch_size=3))
    again, _ = run.predict(frame_loader(run.proc, valid, batch_size=3))
    assert torch.equal(preds, again) and run.learn.model.training


def test_sales_job_is_fit_sales_model_on_the_presets_rows_and_its_result_travels(tmp_path, write_tables,
                                                                                 monkeypatch):
    """What run_parallel sends back: the same run as in-process, picklable, predicting the same."""
    import pickle

    from lessonlib.tabular import experiment

    monkeypatch.setattr(experiment, "rossmann", lambda preset: write_tables(tmp_path))
    monkeypatch.setattr(features, "LESSON_VALID", ("2015-07-29", "2015-07-31"))
    experiment.split_rows.cache_clear()
    cfg, cats, conts = toy_config(epochs=2), ("Store", "DayOfWeek"), ("trend", "Promo")
    try:
        job = experiment.sales_job("tiny", cfg, seed=3, cat_names=cats, cont_names=conts)
        fit, valid = experiment.split_rows("tiny")
    finally:
        experiment.split_rows.cache_clear()
    direct = fit_sales_model(fit, valid, TabularProcessor(list(cats), list(conts)), cfg, seed=3, show=False,
                             device="cpu")
    assert job.rmspe == direct.rmspe and len(job.history) == 2
    back = pickle.loads(pickle.dumps(job))
    with torch.no_grad():
        again = back.model(tuple(torch.as_tensor(a) for a in back.proc.transform(valid)))
    np.testing.assert_allclose(again.double().numpy(), job.valid_log, rtol=1e-6)
    log_valid = torch.tensor(np.log(valid["Sales"].to_numpy()))
    assert exp_rmspe(torch.from_numpy(job.valid_log), log_valid).item() == pytest.approx(job.rmspe)
