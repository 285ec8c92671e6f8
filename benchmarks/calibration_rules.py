"""Notebook 05's classifier: which temperature rule makes its probabilities honest?

    python benchmarks/calibration_rules.py              # after notebook 05 has run and saved its classifier

Reads the classifier notebook 05 saved beside the sample LM, rebuilds 05's split (seed 42, 200 validation
reviews, 150 tokens), fits the temperatures as `fit_length_temperatures` does (on the validation
reviews only) and scores three rules for which temperature a text of n tokens gets:

- "window T up to the median": the windows' temperatures, the whole reviews' only from the median
  review length on (the rule before #36: a review shorter than most got the longest window's);
- "whole-review T past the windows": the whole reviews' temperature for every text longer than the
  longest window (`fit_length_temperatures` now);
- "one temperature": the whole reviews' temperature for every text (Guo et al. 2017).

Prints the log loss on the validation reviews, and on the test reviews the accuracy, mean confidence
and expected calibration error; then how sure `predict` is of spaCy's English stop words alone.
"""

import numpy as np
import pandas as pd
import torch
from spacy.lang.en.stop_words import STOP_WORDS

from lessonlib.calibration import LengthTemperatures, expected_calibration_error
from lessonlib.text.classifier import classifier_path, load_classifier, predict_logits
from lessonlib.text.classifier_data import classification_loader, imdb_classifier_data
from lessonlib.text.confidence import fit_length_temperatures
from lessonlib.text.lm import lm_path
from lessonlib.text.saved import load_encoder


def answer(model, text: str) -> float:
    """The probability `predict` gives `text`'s label (NaN where it refuses a text it knows no word of)."""
    try:
        return model.predict(text)[1]
    except ValueError:
        return np.nan


def main():
    torch.set_num_threads(1)
    lm_file = lm_path("sample")
    model = load_classifier(classifier_path(lm_file))
    _, vocab = load_encoder(lm_file)
    data = imdb_classifier_data(vocab, "sample", max_tokens=150, n_valid=200, seed=42)
    fitted = fit_length_temperatures(model, data.valid, vocab.pad_id, seed=42)
    rules = {
        "window T up to the median": LengthTemperatures(
            (*fitted.lengths[:-1], int(np.median(data.valid.lengths))), fitted.temperatures),
        "whole-review T past the windows": fitted,
        "one temperature": LengthTemperatures((1,), (fitted.temperatures[-1],)),
    }
    valid = predict_logits(model, classification_loader(data.valid, 64, vocab.pad_id, train=False))
    test = predict_logits(model, data.test_loader())
    rows = {}
    for name, rule in rules.items():
        p_valid = rule.probs(valid[0], data.valid.lengths[valid[2]])
        p_test = rule.probs(test[0], data.test.lengths[test[2]])
        acc = float((p_test.argmax(1) == test[1]).float().mean())
        conf = float(p_test.max(1).values.mean())
        model.temperatures = rule
        stop_p = np.array([answer(model, w) for w in sorted(STOP_WORDS)])
        stop_p = stop_p[~np.isnan(stop_p)]
        rows[name] = {"valid log loss": float(-p_valid[torch.arange(len(p_valid)), valid[1]].log().mean()),
                      "test acc": acc, "mean confidence": conf, "confidence - acc": conf - acc,
                      "test ECE": expected_calibration_error(p_test, test[1]),
                      "stop words >= 0.9": float(np.mean(stop_p >= 0.9)), "stop words max": stop_p.max()}
    pairs = zip(fitted.lengths, fitted.temperatures, strict=True)
    print("temperatures by tokens read: " + ", ".join(f"{n}: {t:.2f}" for n, t in pairs))
    print(f"reviews of at most {max(fitted.lengths[:-1])} tokens: validation "
          f"{np.mean(data.valid.lengths <= max(fitted.lengths[:-1])):.1%}, test "
          f"{np.mean(data.test.lengths <= max(fitted.lengths[:-1])):.1%}")
    print(pd.DataFrame(rows).T.round(4).to_string())


if __name__ == "__main__":
    main()
