"""Prompt sets: `.txt` (one prompt a line, `#` comments and blank lines skipped), `.jsonl` (`{"prompt": ...}` a
line, with an optional integer "seed"), `.csv` (a `prompt` or `caption` column, an optional `seed` column).

`load_prompts(path)` returns [(prompt, seed or None)]; every problem is a one-line `PromptFileError` naming the
file (and line) and the fix. `cases(entries, seeds)` makes the (prompt, seed) pairs a benchmark runs.
"""
import csv
import json
import os

from ..config import ASSETS
from ..errors import PPCacheError

BUNDLED_PROMPTS = os.path.join(ASSETS, "prompts", "tiny.txt")
FORMATS = ".txt, .jsonl or .csv"


class PromptFileError(PPCacheError, ValueError):
    """A prompt file is missing, empty or malformed."""


def _seed(value, where):
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise PromptFileError(f"{where}: seed must be a non-negative integer, got {value!r}")


def _prompt(value, where):
    if not isinstance(value, str) or not value.strip():
        raise PromptFileError(f"{where}: the prompt must be a non-empty string, got {value!r}")
    return value.strip()


def _read_txt(handle, path):
    lines = (line.strip() for line in handle)
    return [(line, None) for line in lines if line and not line.startswith("#")]


def _read_jsonl(handle, path):
    entries = []
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise PromptFileError(f"{where} is not valid JSON ({error.msg}): write one object per line, "
                                  'e.g. {"prompt": "a photo of a cat", "seed": 0}') from None
        if not isinstance(item, dict) or "prompt" not in item:
            raise PromptFileError(f'{where}: expected an object with a "prompt" key, e.g. {{"prompt": "a cat"}}')
        entries.append((_prompt(item["prompt"], where), _seed(item.get("seed"), where)))
    return entries


def _column(fields, names):
    return next((f for name in names for f in fields if f.strip().lower() == name), None)


def _read_csv(handle, path):
    reader = csv.DictReader(handle)
    fields = reader.fieldnames or []
    column, seed_column = _column(fields, ("prompt", "caption")), _column(fields, ("seed",))
    if column is None:
        raise PromptFileError(f"{path}: no 'prompt' or 'caption' column (columns: {', '.join(fields) or 'none'}); "
                              "name the prompt column 'prompt' in the header line")
    entries = []
    for row in reader:
        where = f"{path}, line {reader.line_num}"
        entries.append((_prompt(row[column], where), _seed(row.get(seed_column) if seed_column else None, where)))
    return entries


READERS = {".txt": _read_txt, ".jsonl": _read_jsonl, ".csv": _read_csv}


def load_prompts(path=None):
    """[(prompt, seed or None)] from a prompt file; the bundled set when `path` is None."""
    path = path or BUNDLED_PROMPTS
    reader = READERS.get(os.path.splitext(path)[1].lower())
    if reader is None:
        raise PromptFileError(f"{path}: unknown prompt file type; use a {FORMATS} file")
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            entries = reader(handle, path)
    except FileNotFoundError:
        raise PromptFileError(f"prompt file not found: {path} (pass a {FORMATS} file with --prompts)") from None
    except UnicodeDecodeError:
        raise PromptFileError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    if not entries:
        raise PromptFileError(f"{path} holds no prompts; write one prompt per line ({FORMATS})")
    return entries


def bundled_prompts():
    """The bundled prompt set's prompts: what every tool runs when no prompt file is given."""
    return [prompt for prompt, _ in load_prompts()]


def spaced(entries, count=None):
    """`count` entries evenly spaced over the list (all of them when `count` is None or not smaller)."""
    if count and count < len(entries):
        return [entries[i * len(entries) // count] for i in range(count)]
    return list(entries)


def cases(entries, seeds, num_prompts=None):
    """(prompt, seed) pairs: an entry's own seed, else every seed of `seeds`. `num_prompts` keeps that many
    entries, evenly spaced over the file."""
    entries = spaced(entries, num_prompts)
    return [(prompt, seed) for prompt, own in entries for seed in ([own] if own is not None else seeds)]
