import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lessonlib.data import read_review
from lessonlib.learner import Learner, accuracy
from lessonlib.text.awd_lstm import AWDLSTM, save_encoder
from lessonlib.text.classifier import (
    STAGES,
    BucketSampler,
    ChunkedEncoder,
    ClassificationDataset,
    ClassifierData,
    PoolingHead,
    SortedSampler,
    TextClassifier,
    classification_loader,
    classifier_from_lm,
    classifier_run,
    concat_pool,
    discriminative_lrs,
    fine_tuning,
    gradual_unfreezing,
    imdb_classifier_data,
    pad_collate,
    padding_fraction,
    pooled_features,
    predict_probs,
    train_classifier,
)
from lessonlib.text.tokenize import SPECIAL_TOKENS, tokenize
from lessonlib.text.vocab import Vocab

PAD = 1


def tiny_encoder(vocab=30, d=8, seed=0):
    """A small AWD-LSTM, dropouts on, that records the length of every chunk it is called on."""
    torch.manual_seed(seed)
    enc = AWDLSTM(vocab, emb_size=d, n_hid=12, n_layers=2, pad_id=PAD)
    enc.calls = []
    enc.register_forward_pre_hook(lambda m, args: m.calls.append(args[0].shape[1]))
    return enc


def one_pass(enc, tokens):
    enc.reset()
    with torch.no_grad():
        out = enc(tokens)
    enc.reset()
    return out


def random_reviews(n, seed=0, low=2, high=200):
    rng = np.random.default_rng(seed)
    return [rng.integers(2, 30, size=rng.integers(low, high)) for _ in range(n)]


def test_bucket_sampler_yields_every_review_once_per_epoch_in_new_orders():
    lengths = np.random.default_rng(0).integers(1, 500, size=1003)
    sampler = BucketSampler(lengths, bs=16, bucket=10, seed=0)
    epochs = [list(sampler) for _ in range(2)]
    for batches in epochs:
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(1003))
        assert len(batches) == len(sampler) and all(len(b) <= 16 for b in batches)
    assert epochs[0] != epochs[1]


def test_bucketing_pads_far_less_than_random_batches():
    lengths = np.random.default_rng(1).lognormal(5, 0.7, size=2000).astype(int) + 1
    bucketed = padding_fraction(lengths, BucketSampler(lengths, bs=32, seed=0))
    perm = np.random.default_rng(2).permutation(len(lengths))
    random_batches = [perm[i : i + 32] for i in range(0, len(perm), 32)]
    shuffled = padding_fraction(lengths, random_batches)
    assert bucketed < shuffled / 3  # a few long reviews in the tail still pad their batch


def test_sorted_sampler_is_sorted_by_decreasing_length_and_complete():
    lengths = np.random.default_rng(3).integers(1, 100, size=101)
    batches = list(SortedSampler(lengths, bs=8))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(101))
    assert all(np.diff(lengths[flat]) <= 0)


def test_padding_fraction_counts_pads():
    assert padding_fraction([4, 2, 3, 3], [[0, 1], [2, 3]]) == pytest.approx(2 / 14)


def test_pad_collate_pads_at_the_end():
    tokens, labels = pad_collate([(np.array([5, 6, 7]), 1), (np.array([8]), 0)], pad_idx=PAD)
    assert tokens.tolist() == [[5, 6, 7], [8, PAD, PAD]]
    assert labels.tolist() == [1, 0]


def test_loader_batches_cover_the_dataset_and_validation_is_deterministic():
    ds = ClassificationDataset(random_reviews(50), np.arange(50) % 2)
    train = classification_loader(ds, bs=8, pad_idx=PAD, train=True, seed=0)
    seen = []
    for x, y in train:
        assert x.shape[0] == y.shape[0] <= 8
        seen += [int(v) for v in y]
    assert len(seen) == 50
    valid = classification_loader(ds, bs=8, pad_idx=PAD, train=False)
    first = [x for x, _ in valid]
    assert all(torch.equal(a, b) for a, b in zip(first, [x for x, _ in valid], strict=True))
    assert [x.shape[1] for x in first] == sorted([x.shape[1] for x in first], reverse=True)


def test_dataset_caps_length_and_rejects_bad_input():
    ds = ClassificationDataset([np.arange(10), np.arange(3)], [0, 1], max_tokens=4)
    assert ds.lengths.tolist() == [4, 3]
    assert ds[0][0].tolist() == [0, 7, 8, 9] and ds[1][0].tolist() == [0, 1, 2]  # xxbos + the end
    assert ClassificationDataset([np.arange(10)], [0], max_tokens=1)[0][0].tolist() == [0]
    with pytest.raises(ValueError, match="no tokens"):
        ClassificationDataset([np.arange(3), np.array([], dtype=int)], [0, 1])
    with pytest.raises(ValueError, match="labels"):
        ClassificationDataset([np.arange(3)], [0, 1])


def test_concat_pool_ignores_padding_positions():
    torch.manual_seed(0)
    outputs = torch.randn(3, 6, 4)
    mask = torch.tensor([[1] * 6, [1] * 2 + [0] * 4, [0, 1, 1, 1, 0, 0]], dtype=torch.bool)
    last = torch.randn(3, 4)
    pooled = concat_pool(outputs, mask, last)
    garbage = outputs.clone()
    garbage[~mask] = 1e6 * torch.randn(int((~mask).sum()), 4)  # huge values where padding is
    assert torch.allclose(concat_pool(garbage, mask, last), pooled)
    for row in range(3):
        real = outputs[row][mask[row]]
        assert torch.allclose(pooled[row, 4:8], real.max(0).values)
        assert torch.allclose(pooled[row, 8:], real.mean(0))


def test_padding_never_changes_the_classifier_output():
    model = TextClassifier(tiny_encoder(), d=8, pad_idx=PAD, bptt=5, max_len=12).eval()
    review = torch.randint(2, 30, (1, 17))
    alone = model(review)
    padded = torch.cat([review, torch.full((1, 23), PAD)], dim=1)
    other = torch.randint(2, 30, (1, 40))
    together = model(torch.cat([padded, other]))
    assert torch.allclose(together[0], alone[0], atol=1e-6)


def test_chunked_encoder_keeps_only_the_last_max_len_tokens_and_runs_every_chunk():
    enc = tiny_encoder().eval()
    chunked = ChunkedEncoder(enc, pad_idx=PAD, bptt=10, max_len=25)
    tokens = torch.randint(2, 30, (2, 103))
    tokens[1, 60:] = PAD
    outputs, mask, last = chunked(tokens)
    assert sum(enc.calls) == 103 and max(enc.calls) == 10  # all of it, 10 at a time
    assert mask.sum(1).tolist() == [25, 25]
    full = one_pass(enc, tokens)  # one pass over everything gives the same numbers
    assert torch.allclose(last[0], full[0, 102], atol=1e-5)
    assert torch.allclose(last[1], full[1, 59], atol=1e-5)
    assert torch.allclose(outputs[0][mask[0]], full[0, 78:103], atol=1e-5)
    assert torch.allclose(outputs[1][mask[1]], full[1, 35:60], atol=1e-5)
    assert outputs.shape[1] <= 103 - 60 + 25 + 10  # the window, widened to whole chunks


def test_early_chunks_carry_no_gradient():
    model = TextClassifier(tiny_encoder(), d=8, pad_idx=PAD, bptt=10, max_len=10)
    tokens = torch.randint(2, 30, (2, 50))
    model(tokens).sum().backward()
    grad = model.encoder.embedding.weight.grad
    early_only = set(tokens[:, :40].flatten().tolist()) - set(tokens[:, 40:].flatten().tolist())
    assert early_only and all(grad[t].abs().sum() == 0 for t in early_only)
    assert grad[tokens[0, -1]].abs().sum() > 0


def test_a_100_000_token_review_is_read_in_chunks():
    torch.manual_seed(0)
    enc = AWDLSTM(30, emb_size=4, n_hid=4, n_layers=1, pad_id=PAD)
    model = TextClassifier(enc, d=4, pad_idx=PAD, bptt=5000, max_len=100).eval()
    with torch.no_grad():
        scores = model(torch.randint(2, 30, (1, 100_000)))
    assert scores.shape == (1, 2) and torch.isfinite(scores).all()


def test_dataset_cap_turns_a_huge_review_into_a_short_one():
    ds = ClassificationDataset([np.full(100_000, 5), np.full(7, 6)], [1, 0], max_tokens=300)
    tokens, _ = next(iter(classification_loader(ds, bs=2, pad_idx=PAD, train=False)))
    assert tokens.shape == (2, 300)


def test_bucket_sampler_never_leaves_a_batch_of_one():
    sampler = BucketSampler(np.arange(33), bs=16, bucket=1, seed=0)
    sizes = sorted(len(b) for b in sampler)
    assert sizes == [16, 17] and len(sampler) == 2


def test_all_padding_row_fails_clearly():
    model = TextClassifier(tiny_encoder(), d=8, pad_idx=PAD)
    with pytest.raises(ValueError, match="all padding"):
        model(torch.tensor([[5, 6], [PAD, PAD]]))


def test_pooling_head_shapes_and_layers():
    head = PoolingHead(d=8, n_classes=3, hidden=5).eval()
    outputs, last = torch.randn(4, 7, 8), torch.randn(4, 8)
    out = head(outputs, torch.ones(4, 7, dtype=torch.bool), last)
    assert out.shape == (4, 3)
    # padding positions are left out of the pooling: changing them changes nothing
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[:, 5:] = False
    changed = outputs.clone()
    changed[:, 5:] = 100.0
    assert torch.allclose(head(outputs, mask, last), head(changed, mask, last))


def test_layer_groups_end_with_the_head():
    model = TextClassifier(tiny_encoder(), d=8, pad_idx=PAD)
    groups = model.layer_groups()
    assert groups[-1] is model.head
    n_params = sum(p.numel() for g in groups for p in g.parameters())
    assert n_params == sum(p.numel() for p in model.parameters())


def small_vocab():
    words = "the movie was great awful boring fun plot acting".split()
    return Vocab(SPECIAL_TOKENS + words)


def saved_lm_encoder(tmp_path, seed=0):
    torch.manual_seed(seed)
    vocab = small_vocab()
    enc = AWDLSTM(len(vocab), emb_size=8, n_hid=12, n_layers=2, pad_id=vocab.pad_id)
    return save_encoder(tmp_path / "enc.pt", enc, vocab), enc


def test_classifier_from_lm_copies_the_encoder_or_starts_fresh(tmp_path):
    path, enc = saved_lm_encoder(tmp_path)
    lm = classifier_from_lm(path, pretrained=True)
    scratch = classifier_from_lm(path, pretrained=False)
    w = enc.embedding.weight
    assert torch.equal(lm.encoder.embedding.weight, w)
    assert not torch.equal(scratch.encoder.embedding.weight, w)
    assert scratch.encoder.config == lm.encoder.config
    assert lm.encoder.config.drop_mult == 0.5 and lm.vocab.itos == enc_vocab_itos(path)
    assert len(lm.layer_groups()) == 2 + 2  # embedding, 2 LSTM layers, head


def enc_vocab_itos(path):
    return torch.load(path, weights_only=True)["itos"]


def test_classifier_from_lm_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="04_imdb_language_model"):
        classifier_from_lm(tmp_path / "nope.pt")


def test_predict_gives_a_label_and_its_probability(tmp_path):
    model = classifier_from_lm(saved_lm_encoder(tmp_path)[0])
    label, prob = model.predict("The movie was great fun!")
    assert label in ("neg", "pos") and 0.5 <= prob <= 1
    assert model.training  # predict leaves the mode as it found it


@pytest.mark.parametrize("text", ["", "   ", "zzyzx qwertyuiop flibbertigibbet", "ZZYZX!!!!"])
def test_predict_refuses_text_without_a_known_word(tmp_path, text):
    model = classifier_from_lm(saved_lm_encoder(tmp_path)[0])
    with pytest.raises(ValueError, match="nothing to classify"):
        model.predict(text)


def test_unknown_only_text_is_all_xxunk(tmp_path):
    model = classifier_from_lm(saved_lm_encoder(tmp_path)[0])
    ids = model.vocab.numericalize(tokenize("zzyzx qwertyuiop"))
    assert model.vocab.textify(ids) == ["xxbos", "xxunk", "xxunk"]


def test_predict_without_vocab_says_how_to_fix():
    with pytest.raises(ValueError, match="vocabulary"):
        TextClassifier(tiny_encoder(), d=8, pad_idx=PAD).predict("good")


def test_read_review_rejects_non_utf8_bytes_clearly(tmp_path):
    path = tmp_path / "0_1.txt"
    path.write_bytes("Great film \u2014 truly ".encode() + b"\xff\xfe bad bytes")
    with pytest.raises(ValueError, match=r"not valid UTF-8 \(byte 21"):
        read_review(path)
    assert read_review(path, errors="replace").endswith("\ufffd\ufffd bad bytes")


def test_discriminative_lrs_divide_by_2_6_per_group():
    assert discriminative_lrs(1.0, 3) == pytest.approx([1 / 2.6**2, 1 / 2.6, 1.0])


def test_gradual_unfreezing_trains_the_head_then_more_then_all(tmp_path):
    path, _ = saved_lm_encoder(tmp_path)
    model = classifier_from_lm(path, bptt=4)
    rng = np.random.default_rng(0)
    ids = [np.r_[2, rng.integers(7, 16, size=rng.integers(3, 12))] for _ in range(24)]
    ds = ClassificationDataset(ids, np.arange(24) % 2)
    dl = classification_loader(ds, bs=8, pad_idx=model.vocab.pad_id, train=True)
    learn = Learner(model, dl, classification_loader(ds, 8, model.vocab.pad_id, train=False),
                    F.cross_entropy, metrics={"acc": accuracy}, clip=0.25, device="cpu")
    groups = model.layer_groups()
    before = [[p.detach().clone() for p in g.parameters()] for g in groups]
    changed = []
    for epochs in [(1, 0, 0), (0, 1, 0), (0, 0, 1)]:
        histories = gradual_unfreezing(learn, lrs=(1e-2, 1e-2, 1e-2), epochs=epochs, show=False)
        assert [name for name, _ in histories] == [STAGES[epochs.index(1)]]
        assert len(histories[0][1]) == 1  # one epoch
        changed.append([not all(torch.equal(a, b) for a, b in zip(old, g.parameters(), strict=True))
                        for old, g in zip(before, groups, strict=True)])
        before = [[p.detach().clone() for p in g.parameters()] for g in groups]
    assert changed == [[False, False, False, True], [False, False, True, True], [True, True, True, True]]


def test_fine_tuning_recipes_share_the_epochs_and_name_their_schedule():
    assert fine_tuning("every layer", 1e-2, 6) == {"factor": 1.0, "stages": None}
    ulmfit = fine_tuning("ULMFiT", 1e-2, 6)
    lrs, epochs = ulmfit["stages"]
    assert ulmfit["factor"] == 2.6 and sum(epochs) == 6 and epochs[:2] == (1, 1)
    assert lrs == pytest.approx((1e-2, 5e-3, 2.5e-3))  # each stage's head LR lower than the last
    with pytest.raises(ValueError, match="at least 3 epochs"):
        fine_tuning("ULMFiT", 1e-2, 2)
    with pytest.raises(ValueError, match="choose one of"):
        fine_tuning("ulmfit", 1e-2, 6)


def toy_data(n=16, seed=0, valid=True):
    rng = np.random.default_rng(seed)
    ds = ClassificationDataset([np.r_[2, rng.integers(7, 16, size=rng.integers(3, 9))] for _ in range(n)],
                               np.arange(n) % 2)
    return ClassifierData(small_vocab(), ds, ds, ds if valid else None)


def test_train_classifier_validates_on_the_valid_split_and_never_reads_test(tmp_path):
    path, _ = saved_lm_encoder(tmp_path)
    data = toy_data()
    data.test = None  # any use of the test set would fail
    learn = train_classifier(path, data, pretrained=True, seed=0, epochs=2, bs=8, show=False, bptt=4)
    assert len(learn.history) == 2 and learn.history["acc"].notna().all()
    assert learn.history["acc"].iloc[-1] == pytest.approx(learn.evaluate()["acc"])
    quick = dict(pretrained=False, seed=0, epochs=1, bs=8, show=False)
    learn = train_classifier(path, toy_data(valid=False), **quick)
    assert learn.valid_dl is None and len(learn.history) == 1
    assert train_classifier(path, toy_data(), validate=False, **quick).valid_dl is None
    staged = train_classifier(path, toy_data(), pretrained=True, seed=0, stages=((1e-2,) * 3, (1, 2, 0)),
                              bs=8, show=False, bptt=4)
    # every stage's epochs, numbered on, each with its stage
    assert staged.history["epoch"].tolist() == [0, 1, 2]
    assert staged.history["stage"].tolist() == [STAGES[0], STAGES[1], STAGES[1]]
    assert staged.history["acc"].notna().all()


def test_train_classifier_starts_from_the_lm_or_from_scratch(tmp_path):
    path, enc = saved_lm_encoder(tmp_path)
    seen = {}

    class FirstWeights:
        def before_fit(self, learn):
            seen[len(seen)] = learn.model.encoder.embedding.weight.detach().clone()

    for pretrained in (True, False):
        train_classifier(path, toy_data(), pretrained=pretrained, seed=0, epochs=1, bs=8, show=False,
                         callbacks=[FirstWeights()])
    assert torch.equal(seen[0], enc.embedding.weight) and not torch.equal(seen[1], enc.embedding.weight)


@pytest.mark.parametrize("factor", [1.0, 2.6])
def test_train_classifier_passes_the_lr_factor_to_every_layer_group(tmp_path, factor):
    path, _ = saved_lm_encoder(tmp_path)
    peaks = []

    class PeakLRs:  # records each parameter group's highest LR during the run
        def after_loss(self, learn):
            lrs = [g["lr"] for g in learn.opt.param_groups]
            peaks[:] = lrs if not peaks else [max(a, b) for a, b in zip(peaks, lrs, strict=True)]

    train_classifier(path, toy_data(8), pretrained=True, seed=0, lr=1e-2, epochs=3, bs=4, show=False, bptt=4,
                     factor=factor, callbacks=[PeakLRs()])
    ratios = [b / a for a, b in zip(peaks[:-1], peaks[1:], strict=True)]
    assert peaks[-1] == pytest.approx(1e-2, rel=0.05)
    assert ratios == pytest.approx([factor] * len(ratios), rel=1e-6)


def test_subset_takes_equal_classes_seeded_and_keeps_valid_and_test():
    data = toy_data(16)
    data.train_texts = [f"t{i}" for i in range(16)]
    sub = data.subset(6, seed=1)
    assert len(sub.train) == 6 and np.bincount(sub.train.labels).tolist() == [3, 3]
    assert sub.valid is data.valid and sub.test is data.test
    assert [int(t[1:]) % 2 for t in sub.train_texts] == sub.train.labels.tolist()  # texts follow the rows
    assert sub.train_texts == data.subset(6, seed=1).train_texts != data.subset(6, seed=2).train_texts
    with pytest.raises(ValueError, match="equal parts"):
        data.subset(7)
    with pytest.raises(ValueError, match="cannot take 18"):
        data.subset(18)


def test_imdb_classifier_data_carves_validation_from_train(monkeypatch, tmp_path):
    import pandas as pd

    monkeypatch.setenv("LESSONLIB_DATA", str(tmp_path))

    def fake_reviews(size, split):
        return pd.DataFrame({"text": [f"{split} movie {i}" for i in range(10)], "label": np.arange(10) % 2})

    monkeypatch.setattr("lessonlib.text.classifier.imdb_reviews", fake_reviews)
    data = imdb_classifier_data(small_vocab(), "sample", n_valid=4, n_workers=1)
    assert len(data.train) == 6 and len(data.valid) == 4 and len(data.test) == 10
    assert np.bincount(data.valid.labels).tolist() == [2, 2]  # as many of each class
    assert not set(data.train_texts) & set(data.valid_texts)
    assert set(data.train_texts) | set(data.valid_texts) == {f"train movie {i}" for i in range(10)}
    assert data.test_texts[0] == "test movie 0"
    assert imdb_classifier_data(small_vocab(), n_workers=1).valid is None


def test_pooled_features_match_the_model_input_in_dataset_order():
    enc = tiny_encoder()
    ds = ClassificationDataset(random_reviews(5, high=30), [0, 1, 0, 1, 0])
    feats = pooled_features(enc, ds, PAD, bs=2, bptt=7)
    assert feats.shape == (5, 24) and enc.training
    one = ChunkedEncoder(enc.eval(), PAD, bptt=7)(torch.as_tensor(ds[3][0])[None])
    assert np.allclose(feats[3], concat_pool(*one)[0].detach().numpy(), atol=1e-5)


def test_saved_classifier_predicts_like_the_original(tmp_path):
    from lessonlib.text.classifier import classifier_path, load_classifier, save_classifier

    path, _ = saved_lm_encoder(tmp_path)
    model = classifier_from_lm(path).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    saved = save_classifier(classifier_path(tmp_path / "clf" / "lm.pt"), model, path)
    assert saved.name == "lm_classifier.pt"
    again = load_classifier(saved)
    for text in ["great great fun", "boring"]:
        assert again.predict(text) == pytest.approx(model.predict(text))
    with pytest.raises(FileNotFoundError, match="05_imdb_classifier"):
        load_classifier(tmp_path / "missing.pt")


def test_classifier_run_returns_history_one_test_score_and_weights_on_request(tmp_path):
    path, _ = saved_lm_encoder(tmp_path)
    data = toy_data()
    run = classifier_run(path, data, pretrained=True, seed=0, lr=1e-2, epochs=2, bs=8, keep_weights=True)
    assert len(run["history"]) == 2 and run["history"]["acc"].notna().all()
    model = classifier_from_lm(path, pretrained=False)
    model.load_state_dict(run["weights"])
    probs, targets, index = predict_probs(model, data.test_loader(bs=4))
    # the run scored in bf16 where the CPU has it, predict_probs in fp32: one review may flip
    assert run["test_acc"] == pytest.approx((probs.argmax(1) == targets).float().mean().item(), abs=1.01 / 16)
    assert torch.allclose(probs.sum(1), torch.ones(len(probs)))
    assert sorted(index.tolist()) == list(range(len(data.test)))
    assert torch.equal(targets, torch.as_tensor(data.test.labels[index]))
    assert "weights" not in classifier_run(path, data, pretrained=False, seed=0, lr=1e-2, epochs=1, bs=8)
    staged = classifier_run(path, data, pretrained=True, seed=0, lr=1e-2, epochs=3, recipe="ULMFiT", bs=8)
    assert len(staged["history"]) == 3 and staged["history"]["stage"].tolist() == list(STAGES)


def test_a_saved_classifier_moves_with_its_lm(tmp_path):
    import shutil

    from lessonlib.text.classifier import classifier_path, load_classifier, save_classifier

    path, _ = saved_lm_encoder(tmp_path / "data")
    model = classifier_from_lm(path).eval()
    save_classifier(classifier_path(path), model, path)
    shutil.move(tmp_path / "data", tmp_path / "moved")  # a new LESSONLIB_DATA
    again = load_classifier(tmp_path / "moved" / classifier_path(path).name)
    assert again.predict("great fun") == pytest.approx(model.predict("great fun"))


def test_a_broken_classifier_file_names_itself_and_notebook_05(tmp_path):
    from lessonlib.text.classifier import load_classifier
    from lessonlib.text.saved import SavedModelError

    broken = tmp_path / "lm_classifier.pt"
    broken.write_bytes(b"half a file")
    with pytest.raises(SavedModelError, match=r"lm_classifier.pt is not a readable saved classifier.*05"):
        load_classifier(broken)


def test_predict_divides_by_the_temperature_for_the_text_length(tmp_path):
    from lessonlib.calibration import LengthTemperatures

    model = classifier_from_lm(saved_lm_encoder(tmp_path)[0]).eval()
    with torch.no_grad():
        model.head.layers[-1].bias.copy_(torch.tensor([-4.0, 4.0]))  # raw: sure of 'pos'
    raw_short, raw_long = model.predict("great"), model.predict("the movie was great fun " * 4)
    model.temperatures = LengthTemperatures((2, 10), (100.0, 1.0))
    short, long = model.predict("great"), model.predict("the movie was great fun " * 4)
    assert short[0] == raw_short[0] and 0.5 <= short[1] < 0.55 < raw_short[1]  # same label, less sure
    assert long == pytest.approx(raw_long)  # 21 tokens: temperature 1


def test_a_saved_classifier_keeps_its_temperatures(tmp_path):
    from lessonlib.calibration import LengthTemperatures
    from lessonlib.text.classifier import classifier_path, load_classifier, save_classifier

    path, _ = saved_lm_encoder(tmp_path)
    model = classifier_from_lm(path).eval()
    assert load_classifier(save_classifier(classifier_path(path), model, path)).temperatures is None
    model.temperatures = LengthTemperatures((2, 33), (6.5, 1.25))
    again = load_classifier(save_classifier(classifier_path(path), model, path))
    assert again.temperatures == model.temperatures
    assert again.predict("great") == pytest.approx(model.predict("great"))


def test_predict_probs_pairs_rows_with_their_reviews_under_a_shuffling_loader(tmp_path):
    model = classifier_from_lm(saved_lm_encoder(tmp_path)[0]).eval()
    reviews = random_reviews(24, seed=5, high=40)
    data = ClassificationDataset([np.clip(r, 4, 14) for r in reviews], np.arange(24) % 2)
    shuffled = classification_loader(data, 4, model.vocab.pad_id, train=True, seed=3, bucket=2)
    probs, targets, index = predict_probs(model, shuffled)
    assert sorted(index.tolist()) == list(range(24))
    assert torch.equal(targets, torch.as_tensor(data.labels[index]))
    with torch.no_grad():
        alone = torch.cat([model(torch.as_tensor(data.ids[i])[None]).softmax(-1) for i in index])
    assert torch.allclose(probs, alone, atol=1e-5)
