"""Saved model files fail clearly: the error names the file, what is wrong and the remedy."""

import pytest
import torch

from lessonlib.text.saved import SavedModelError, read_saved

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
