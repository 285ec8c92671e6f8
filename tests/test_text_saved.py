"""Saved model files fail clearly: the error names the file, what is wrong and the remedy."""

import pytest
import torch

from lessonlib.text.awd_lstm import AWDLSTM, AWDConfig, awd_lstm_lm
from lessonlib.text.saved import SavedModelError, load_encoder, load_language_model, read_saved, save_encoder
from lessonlib.text.tokenize import SPECIAL_TOKENS
from lessonlib.text.vocab import Vocab

V = 30
ARGS = (("config", "state_dict"), "saved LM encoder", "rerun notebook 04")


def good_file(path):
    torch.save({"config": {"n": 1}, "state_dict": {"w": torch.ones(200, 200)}}, path)
    return path


def test_a_good_file_reads_back(tmp_path):
    blob = read_saved(good_file(tmp_path / "lm.pt"), *ARGS)
    assert blob["config"] == {"n": 1} and torch.equal(blob["state_dict"]["w"], torch.ones(200, 200))


def test_a_missing_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved LM encoder at .*missing.pt: rerun notebook 04"):
        read_saved(tmp_path / "missing.pt", *ARGS)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_broken_file_is_named_with_the_remedy(tmp_path, damage):
    path = good_file(tmp_path / "lm.pt")
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00not a torch file" * 50,
                      "empty": b""}[damage])
    with pytest.raises(SavedModelError) as err:
        read_saved(path, *ARGS)
    message = str(err.value)
    assert str(path) in message and "not a readable saved LM encoder" in message
    assert "Delete it, then rerun notebook 04" in message


@pytest.mark.parametrize("content", [{"weights": torch.ones(2)}, [1, 2, 3]])
def test_another_programs_torch_file_is_refused(tmp_path, content):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(SavedModelError, match=r"other.pt is a torch file but not a saved LM encoder \(no"):
        read_saved(path, *ARGS)


def test_save_and_load_encoder(tmp_path):
    vocab = Vocab(SPECIAL_TOKENS + [f"w{i}" for i in range(V - len(SPECIAL_TOKENS))])
    enc = AWDLSTM(AWDConfig(V, 6, 10, 2)).eval()
    path = save_encoder(tmp_path / "m" / "enc.pt", enc, vocab)
    enc2, vocab2 = load_encoder(path, drop_mult=0.5)
    assert vocab2.itos == vocab.itos and enc2.config.drop_mult == 0.5
    x = torch.randint(0, V, (2, 4))
    assert torch.allclose(enc(x), enc2.eval()(x))
    assert not list((tmp_path / "m").glob("*.tmp"))
    with pytest.raises(FileNotFoundError, match="notebooks/04"):
        load_encoder(tmp_path / "none.pt")


def test_save_with_decoder_rebuilds_the_language_model(tmp_path):
    vocab = Vocab(SPECIAL_TOKENS + [f"w{i}" for i in range(V - len(SPECIAL_TOKENS))])
    lm = awd_lstm_lm(AWDConfig(V, 6, 10, 2))
    with torch.no_grad():
        lm.decoder.linear.bias.normal_()
    lm.eval()
    path = save_encoder(tmp_path / "lm.pt", lm.encoder, vocab, lm.decoder)
    lm2, _ = load_language_model(path)
    x = torch.randint(0, V, (2, 5))
    lm.reset()
    assert torch.allclose(lm.log_probs(x), lm2.log_probs(x), atol=1e-6)
    assert lm2.decoder.linear.weight is lm2.encoder.embedding.weight
    with pytest.raises(ValueError, match="encoder only"):
        load_language_model(save_encoder(tmp_path / "enc.pt", lm.encoder, vocab))


def test_save_with_adaptive_decoder_rebuilds_the_language_model(tmp_path):
    vocab = Vocab(SPECIAL_TOKENS + [f"w{i}" for i in range(V - len(SPECIAL_TOKENS))])
    lm = awd_lstm_lm(AWDConfig(V, 6, 10, 2), adaptive_cutoffs=(10,)).eval()
    path = save_encoder(tmp_path / "lm.pt", lm.encoder, vocab, lm.decoder)
    lm2, _ = load_language_model(path)
    x = torch.randint(0, V, (2, 5))
    lm.reset()
    assert torch.allclose(lm.log_probs(x), lm2.log_probs(x), atol=1e-6)
    assert not lm2.training


def test_a_truncated_encoder_file_names_itself_and_notebook_04(tmp_path):
    from lessonlib.text.saved import SavedModelError

    vocab = Vocab(SPECIAL_TOKENS + [f"w{i}" for i in range(V - len(SPECIAL_TOKENS))])
    path = save_encoder(tmp_path / "enc.pt", AWDLSTM(AWDConfig(V, 6, 10, 2)), vocab)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(SavedModelError, match=r"enc.pt is not a readable saved LM encoder.*04_imdb"):
        load_encoder(path)
