"""Prompt sets for tools/benchmark.py: .txt / .jsonl / .csv, the bundled set, one-line errors."""
import pytest

from ppcache.bench.prompts import BUNDLED_PROMPTS, PromptFileError, cases, load_prompts


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_txt_skips_comments_and_blank_lines(tmp_path):
    path = write(tmp_path, "p.txt", "# a comment\n\na cat\n  a dog  \n#another\n")
    assert load_prompts(path) == [("a cat", None), ("a dog", None)]


def test_jsonl_with_optional_seed(tmp_path):
    path = write(tmp_path, "p.jsonl", '{"prompt": "a cat"}\n\n{"prompt": "a dog", "seed": 7}\n')
    assert load_prompts(path) == [("a cat", None), ("a dog", 7)]


def test_csv_caption_column_and_seed(tmp_path):
    path = write(tmp_path, "p.csv", 'id,caption,seed\n1,"a cat, sitting",\n2,a dog,3\n')
    assert load_prompts(path) == [("a cat, sitting", None), ("a dog", 3)]


def test_cases_cross_seeds_and_keep_own_seed():
    entries = [("a", None), ("b", 5), ("c", None), ("d", None)]
    assert cases(entries, [0, 1]) == [("a", 0), ("a", 1), ("b", 5), ("c", 0), ("c", 1), ("d", 0), ("d", 1)]
    assert cases(entries, [0], num_prompts=2) == [("a", 0), ("c", 0)]


def test_bundled_set_is_the_training_subjects():
    from ppcache.tiny.dataset import subject_prompts

    assert [p for p, _ in load_prompts()] == subject_prompts()
    assert load_prompts(BUNDLED_PROMPTS) == load_prompts(None)


@pytest.mark.parametrize("name,text,pattern", [
    ("missing.txt", None, "prompt file not found: .*missing.txt"),
    ("empty.txt", "# only a comment\n\n", "empty.txt holds no prompts; write one prompt per line"),
    ("p.jsonl", '{"prompt": "a cat"}\n{"prompt": "a dog",\n', r"p.jsonl, line 2 is not valid JSON .*one object per"),
    ("p.jsonl", '{"text": "a cat"}\n', r'p.jsonl, line 1: expected an object with a "prompt" key'),
    ("p.jsonl", '{"prompt": "a cat", "seed": -1}\n', r"p.jsonl, line 1: seed must be a non-negative integer"),
    ("p.csv", "id,text\n1,a cat\n", r"p.csv: no 'prompt' or 'caption' column \(columns: id, text\)"),
    ("p.csv", "prompt\na cat\n\"\"\n", r"p.csv, line 3: the prompt must be a non-empty string"),
    ("p.yaml", "- a cat\n", r"p.yaml: unknown prompt file type; use a .txt, .jsonl or .csv file"),
])
def test_bad_prompt_files_give_one_line(tmp_path, name, text, pattern):
    path = write(tmp_path, name, text) if text is not None else str(tmp_path / name)
    with pytest.raises(PromptFileError, match=pattern) as error:
        load_prompts(path)
    assert "\n" not in str(error.value)
