"""Tiny, self-made tokenizer directories for offline tests of text-to-image pipelines.

Both load with `from_pretrained(directory)` of ppdiffusers.transformers (PaddleNLP) CLIPTokenizer /
T5Tokenizer and of transformers' slow tokenizers; nothing is downloaded.
"""
import json
import os


def bytes_to_unicode():
    """GPT-2/CLIP's reversible map from the 256 byte values to printable unicode characters."""
    chars = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = chars[:]
    extra = 0
    for byte in range(256):
        if byte not in chars:
            chars.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(chars, map(chr, codes)))


def _write_json(directory, name, data):
    with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2)


def write_clip_tokenizer(directory, model_max_length=77):
    """A byte-level BPE CLIP tokenizer with no merges: every byte is a token (vocab size 514).

    Vocab: the 256 byte characters, the same with the end-of-word marker `</w>`, then
    `<|startoftext|>` (512) and `<|endoftext|>` (513, also used as pad/unk).
    """
    os.makedirs(directory, exist_ok=True)
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    _write_json(directory, "vocab.json", {token: index for index, token in enumerate(vocab)})
    with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8") as handle:
        handle.write("#version: 0.2\n")  # first line is a header; no merges follow
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>"}
    _write_json(directory, "special_tokens_map.json", special)
    _write_json(directory, "tokenizer_config.json", dict(
        special, tokenizer_class="CLIPTokenizer", model_max_length=model_max_length, max_len=model_max_length,
        do_lower_case=True, errors="replace"))
    return directory


def write_t5_tokenizer(directory, sentences, vocab_size=256, model_max_length=16):
    """A sentencepiece (BPE) T5 tokenizer trained on `sentences` (pad 0, eos 1, unk 2, no bos, no extra ids).

    BPE rather than unigram: on a corpus of a few dozen prompts the unigram trainer stops near character level,
    BPE learns whole words, so short prompts fit in a short `model_max_length`.
    """
    import io

    import sentencepiece as spm

    os.makedirs(directory, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(sentences) * 20), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        character_coverage=1.0, hard_vocab_limit=False, minloglevel=2, num_threads=1)
    with open(os.path.join(directory, "spiece.model"), "wb") as handle:
        handle.write(model.getvalue())
    special = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
    _write_json(directory, "special_tokens_map.json", special)
    _write_json(directory, "tokenizer_config.json", dict(
        special, tokenizer_class="T5Tokenizer", model_max_length=model_max_length, extra_ids=0,
        additional_special_tokens=[], do_lower_case=False))
    return directory
