"""Compiled loops (numba) behind `app/fast.py`: n-gram lookup, TF-IDF and per-word evidence.

They read texts as arrays of code points and the fitted vocabularies as hash tables built
from the vectorizers' own `vocabulary_`, and cut tokens and character n-grams as
scikit-learn's analyzers do (`token_pattern` words and bigrams, `char_wb` n-grams). Every
hit is checked code point by code point against the vocabulary term, so a hash collision
can never count a wrong n-gram. tests/test_fast.py holds them equal to `pipeline.transform`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

if not os.access(Path(__file__).parent, os.W_OK) and "NUMBA_CACHE_DIR" not in os.environ:
    # numba caches compiled loops beside this file; a read-only install caches them in a temporary folder
    os.environ["NUMBA_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / f"inbound-triage-numba-{os.getuid()}")

from numba import njit  # after NUMBA_CACHE_DIR is settled

# Character classes of a code point (bit flags), filled lazily from Python's own str methods.
WORD_CHAR = 1  # re's \w: str.isalnum() or "_"
SPACE = 2  # re's \s and str.split(): str.isspace()
EXCLUDED = 4  # punctuation the token pattern never takes as a one-character token
SINGLE = 8  # a word character that is a word by itself (CJK scripts write no spaces): app.text.SINGLE_WORD
MARK = 16  # a combining mark (Unicode M*): it continues a word (app.text.WORD_MARKS)
UNKNOWN = 255

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_PAIR_MIX = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True)
def _step(h, code):
    return (h ^ np.uint64(code)) * _FNV_PRIME


@njit(cache=True, nogil=True)
def _empty_table(n):
    """Slots (-1: empty) and their keys for n entries, at most half full; and the index mask."""
    size = 1
    while size < 2 * n + 2:
        size *= 2
    return np.full(size, -1, dtype=np.int64), np.uint64(size - 1)


@njit(cache=True, nogil=True)
def _free_slot(slots, i, mask):
    while slots[i] != -1:
        i = (i + np.uint64(1)) & mask
    return i


@njit(cache=True, nogil=True)
def build_term_table(codes, starts):
    """An open-addressing table of the terms codes[starts[t]:starts[t+1]] -> t (slot -1 is empty)."""
    slots, mask = _empty_table(len(starts) - 1)
    hashes = np.zeros(len(slots), dtype=np.uint64)
    for t in range(len(starts) - 1):
        h = _FNV_OFFSET
        for i in range(starts[t], starts[t + 1]):
            h = _step(h, codes[i])
        i = _free_slot(slots, h & mask, mask)
        slots[i] = t
        hashes[i] = h
    return slots, hashes


@njit(cache=True, nogil=True)
def _find(h, buf, start, length, slots, hashes, tcodes, tstarts):
    """The term whose code points are buf[start:start+length] (hash h), or -1."""
    mask = np.uint64(len(slots) - 1)
    i = h & mask
    while slots[i] != -1:
        if hashes[i] == h:
            t = slots[i]
            a = tstarts[t]
            if tstarts[t + 1] - a == length:
                same = True
                for j in range(length):
                    if tcodes[a + j] != buf[start + j]:
                        same = False
                        break
                if same:
                    return t
        i = (i + np.uint64(1)) & mask
    return -1


@njit(cache=True, nogil=True)
def build_pair_table(first, second, n_first):
    """Table of bigram terms keyed by their two unigram columns: (first[t], second[t]) -> t."""
    slots, mask = _empty_table(len(first))
    keys = np.zeros(len(slots), dtype=np.int64)
    for t in range(len(first)):
        key = first[t] * n_first + second[t]
        i = _free_slot(slots, (np.uint64(key) * _PAIR_MIX) & mask, mask)
        slots[i] = t
        keys[i] = key
    return slots, keys


@njit(cache=True, nogil=True)
def _find_pair(key, slots, keys):
    mask = np.uint64(len(slots) - 1)
    i = (np.uint64(key) * _PAIR_MIX) & mask
    while slots[i] != -1:
        if keys[i] == key:
            return slots[i]
        i = (i + np.uint64(1)) & mask
    return -1


WORD_CACHE_SLOTS = 1 << 17  # distinct words remembered: half the slots
WORD_CACHE_CODES = 1 << 21  # their code points
WORD_CACHE_HITS = 1 << 22  # their n-gram hits


def new_word_cache() -> tuple[np.ndarray, ...]:
    """Empty memory of words already cut into n-grams: (table, hashes, entries, codes, hits, owners, counts)."""
    return (
        np.full(WORD_CACHE_SLOTS, -1, dtype=np.int64),
        np.zeros(WORD_CACHE_SLOTS, dtype=np.uint64),
        np.zeros((WORD_CACHE_SLOTS // 2, 5), dtype=np.int64),  # code start, length, first hit, hit count, words
        np.zeros(WORD_CACHE_CODES, dtype=np.uint32),
        np.zeros(WORD_CACHE_HITS, dtype=np.int32),
        np.zeros(WORD_CACHE_HITS, dtype=np.int32),  # each hit's word within its run
        np.zeros(3, dtype=np.int64),  # entries, codes and hits used
    )


@njit(cache=True, nogil=True)
def char_wb_occurrences(
    codes, doc_starts, cls, lo, hi, slots, hashes, tcodes, tstarts, table, table_hash, entries, wcodes, whits, wsubs, used
):
    """Vocabulary hits of `char_wb` n-grams (lo..hi) of every doc: (doc_ptr, column, owner word).

    As scikit-learn: each whitespace-separated word is padded with a space on both sides;
    n-grams shorter than the padded word are taken at every offset, and the padded word
    itself once when it is no longer than `hi`. A word's hits depend on the word alone, so
    they are remembered (in the cache arrays, across calls, until they are full) and copied
    for its repeats. The owner is the word of word_spans where the n-gram starts: a run between
    spaces can hold several (one per Chinese, Japanese or Korean character).
    """
    n_docs = len(doc_starts) - 1
    cap = 16
    cols = np.empty(cap, dtype=np.int64)
    owners = np.empty(cap, dtype=np.int64)
    n = 0
    doc_ptr = np.zeros(n_docs + 1, dtype=np.int64)
    buf = np.empty(64, dtype=np.uint32)
    sub = np.empty(64, dtype=np.int64)
    mask = np.uint64(len(table) - 1)
    for d in range(n_docs):
        pos = doc_starts[d]
        end = doc_starts[d + 1]
        word = 0
        while pos < end:
            if cls[codes[pos]] & SPACE:
                pos += 1
                continue
            stop = pos
            h = _FNV_OFFSET
            while stop < end and not (cls[codes[stop]] & SPACE):
                h = _step(h, codes[stop])
                stop += 1
            wlen = stop - pos
            i = h & mask
            found = -1
            while table[i] != -1:
                e = table[i]
                if table_hash[i] == h and entries[e, 1] == wlen:
                    same = True
                    for j in range(wlen):
                        if wcodes[entries[e, 0] + j] != codes[pos + j]:
                            same = False
                            break
                    if same:
                        found = e
                        break
                i = (i + np.uint64(1)) & mask
            if found >= 0:
                first, count = entries[found, 2], entries[found, 3]
                if n + count > cap:
                    cap = 2 * (n + count)
                    cols = _grow(cols, cap)
                    owners = _grow(owners, cap)
                for j in range(count):
                    cols[n + j] = whits[first + j]
                    owners[n + j] = word + wsubs[first + j]
                n += count
                word += entries[found, 4]
                pos = stop
                continue
            start_n = n
            length = wlen + 2
            if length > len(buf):
                buf = np.empty(2 * length, dtype=np.uint32)
            buf[0] = 32
            for j in range(pos, stop):
                buf[j - pos + 1] = codes[j]
            buf[length - 1] = 32
            if wlen > len(sub):
                sub = np.empty(2 * wlen, dtype=np.int64)
            sub[0] = 0
            for j in range(1, wlen):  # which of the run's words each character is in
                split = (cls[codes[pos + j]] & SINGLE) or (cls[codes[pos + j - 1]] & SINGLE)
                sub[j] = sub[j - 1] + (1 if split else 0)
            for s in range(length):
                g_hash = _FNV_OFFSET
                top = min(hi, length - s)
                for g in range(1, top + 1):
                    g_hash = _step(g_hash, buf[s + g - 1])
                    if (lo <= g < length) or (s == 0 and g == length):
                        t = _find(g_hash, buf, s, g, slots, hashes, tcodes, tstarts)
                        if t >= 0:
                            if n == cap:
                                cap *= 2
                                cols = _grow(cols, cap)
                                owners = _grow(owners, cap)
                            cols[n] = t
                            owners[n] = word + sub[min(max(s - 1, 0), wlen - 1)]
                            n += 1
            count = n - start_n
            if used[0] < len(entries) and used[1] + wlen <= len(wcodes) and used[2] + count <= len(whits):
                e = used[0]
                entries[e, 0] = used[1]
                entries[e, 1] = wlen
                entries[e, 2] = used[2]
                entries[e, 3] = count
                entries[e, 4] = sub[wlen - 1] + 1
                for j in range(wlen):
                    wcodes[used[1] + j] = codes[pos + j]
                for j in range(count):
                    whits[used[2] + j] = cols[start_n + j]
                    wsubs[used[2] + j] = owners[start_n + j] - word
                table[i] = e
                table_hash[i] = h
                used[0] += 1
                used[1] += wlen
                used[2] += count
            word += sub[wlen - 1] + 1
            pos = stop
        doc_ptr[d + 1] = n
    return doc_ptr, cols[:n], owners[:n]


@njit(cache=True, nogil=True)
def _grow(a, cap):
    out = np.empty(cap, dtype=a.dtype)
    out[: len(a)] = a
    return out


@njit(cache=True, nogil=True)
def word_occurrences(codes, doc_starts, cls, bigrams, slots, hashes, tcodes, tstarts, pair_slots, pair_keys, n_unigram_key):
    """Vocabulary hits of `token_pattern` unigrams (and bigrams) of every doc.

    Tokens are one SINGLE character, runs of two or more other word characters and combining marks
    (starting with a word character), or one character that is neither a word character, a space,
    a mark nor excluded punctuation: WORD_PATTERN of app/text.py. Returns
    (doc_ptr, column, owner word, share, unseen): a bigram appears twice, half for each of its
    words; unseen[d] counts doc d's words (each occurrence) outside the vocabulary.
    """
    n_docs = len(doc_starts) - 1
    cap = 16
    cols = np.empty(cap, dtype=np.int64)
    owners = np.empty(cap, dtype=np.int64)
    shares = np.empty(cap, dtype=np.float64)
    n = 0
    doc_ptr = np.zeros(n_docs + 1, dtype=np.int64)
    unseen = np.zeros(n_docs, dtype=np.float64)
    for d in range(n_docs):
        pos = doc_starts[d]
        end = doc_starts[d + 1]
        tokens = 0
        known = 0  # words found in the vocabulary
        word = -1
        prev_space = True
        prev_term = -2  # -2: no previous token; -1: previous token not in the vocabulary
        prev_owner = 0
        prev_single = False
        while pos < end:
            c = cls[codes[pos]]
            if c & SPACE:
                prev_space = True
                pos += 1
                continue
            if prev_space or prev_single or c & SINGLE:  # the words of word_spans
                word += 1
                prev_space = False
            prev_single = (c & SINGLE) != 0
            if c & SINGLE:  # a character of a script without spaces is a token by itself
                stop = pos + 1
            elif c & WORD_CHAR:  # a run of letters and the combining marks among them
                stop = pos + 1
                while stop < end and (
                    (cls[codes[stop]] & WORD_CHAR and not cls[codes[stop]] & SINGLE) or cls[codes[stop]] & MARK
                ):
                    stop += 1
                if stop - pos < 2:  # a lone letter is no token
                    pos = stop
                    continue
            elif c & EXCLUDED:
                pos += 1
                continue
            else:
                stop = pos + 1
            h = _FNV_OFFSET
            for i in range(pos, stop):
                h = _step(h, codes[i])
            t = _find(h, codes, pos, stop - pos, slots, hashes, tcodes, tstarts)
            tokens += 1
            if n + 3 > cap:
                cap = 2 * cap + 3
                cols = _grow(cols, cap)
                owners = _grow(owners, cap)
                shares = _grow(shares, cap)
            if t >= 0:
                cols[n] = t
                owners[n] = word
                shares[n] = 1.0
                n += 1
                known += 1
            if bigrams and t >= 0 and prev_term >= 0:
                b = _find_pair(prev_term * n_unigram_key + t, pair_slots, pair_keys)
                if b >= 0:
                    cols[n] = b
                    owners[n] = prev_owner
                    shares[n] = 0.5
                    cols[n + 1] = b
                    owners[n + 1] = word
                    shares[n + 1] = 0.5
                    n += 2
            prev_term = t
            prev_owner = word
            # the next token starts at `stop`: a run of letters ends at a space, a symbol or a SINGLE character
            pos = stop
            # spaces and chunk boundaries are only tracked at the top of the loop
        doc_ptr[d + 1] = n
        unseen[d] = tokens - known
    return doc_ptr, cols[:n], owners[:n], shares[:n], unseen


@njit(cache=True, nogil=True)
def tfidf(doc_ptr, cols, shares, idf, n_cols, sublinear, l2, unseen_mass):
    """CSR (indptr, indices, data) of TF-IDF rows from hits, and each hit's entry in `data`.

    A hit's share counts towards its term (bigram halves add up to one). As TfidfVectorizer:
    tf = count, or 1 + log(count) when sublinear; times idf; rows scaled to unit l2 norm, with
    unseen_mass[d] (the unseen n-grams' share, as TextVectorizer's l2_with_unseen) added to the squares.
    """
    n_docs = len(doc_ptr) - 1
    where = np.full(n_cols, -1, dtype=np.int64)
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    indices = np.empty(len(cols), dtype=np.int64)
    data = np.empty(len(cols), dtype=np.float64)
    entry_of = np.empty(len(cols), dtype=np.int64)
    nnz = 0
    for d in range(n_docs):
        first = nnz
        for o in range(doc_ptr[d], doc_ptr[d + 1]):
            col = cols[o]
            e = where[col]
            if e < 0:
                e = nnz
                where[col] = e
                indices[e] = col
                data[e] = 0.0
                nnz += 1
            data[e] += shares[o]
            entry_of[o] = e
        total = 0.0
        for e in range(first, nnz):
            count = np.round(data[e])
            tf = np.log(count) + 1.0 if sublinear else count
            value = tf * idf[indices[e]]
            data[e] = value
            total += value * value
            where[indices[e]] = -1
        total += unseen_mass[d]
        if l2 and total > 0.0:
            norm = np.sqrt(total)
            for e in range(first, nnz):
                data[e] /= norm
        indptr[d + 1] = nnz
    return indptr, indices[:nnz], data[:nnz], entry_of


@njit(cache=True, nogil=True)
def word_contributions(doc_ptr, owners, shares, entry_of, data, indices, weights_by_doc, chosen, offset, word_base, n_words):
    """Each word's share of its doc's decision value for the chosen class, from one block's hits.

    A hit gives share / (the shares of its term in the doc) of the term's contribution
    value * weight to its word: n-grams seen k times split evenly, a bigram half to each word.
    """
    out = np.zeros(n_words, dtype=np.float64)
    totals = np.zeros(len(data), dtype=np.float64)
    for o in range(len(entry_of)):
        totals[entry_of[o]] += shares[o]
    for d in range(len(doc_ptr) - 1):
        k = chosen[d]
        for o in range(doc_ptr[d], doc_ptr[d + 1]):
            e = entry_of[o]
            contribution = data[e] * weights_by_doc[k, offset + indices[e]]
            out[word_base[d] + owners[o]] += contribution * shares[o] / totals[e]
    return out


@njit(cache=True, nogil=True)
def word_spans(codes, doc_starts, cls):
    """(start, end) of every word a reader sees in every doc, relative to its doc, and each doc's first word.

    A word is a run of characters between spaces, except that a SINGLE character (Chinese,
    Japanese, Korean) is a word by itself and ends the run before it.
    """
    n_docs = len(doc_starts) - 1
    base = np.zeros(n_docs + 1, dtype=np.int64)
    cap = 16
    starts = np.empty(cap, dtype=np.int64)
    ends = np.empty(cap, dtype=np.int64)
    n = 0
    for d in range(n_docs):
        pos = doc_starts[d]
        end = doc_starts[d + 1]
        while pos < end:
            if cls[codes[pos]] & SPACE:
                pos += 1
                continue
            stop = pos + 1
            if not cls[codes[pos]] & SINGLE:
                while stop < end and not (cls[codes[stop]] & (SPACE | SINGLE)):
                    stop += 1
            if n == cap:
                cap *= 2
                starts = _grow(starts, cap)
                ends = _grow(ends, cap)
            starts[n] = pos - doc_starts[d]
            ends[n] = stop - doc_starts[d]
            n += 1
            pos = stop
        base[d + 1] = n
    return base, starts[:n], ends[:n]


@njit(cache=True, nogil=True)
def add_decision(indptr, indices, data, coef, offset, out):
    """out[d, k] += sum of value * coef[k, offset + column] over doc d's entries of one CSR block."""
    for d in range(len(indptr) - 1):
        for e in range(indptr[d], indptr[d + 1]):
            col = offset + indices[e]
            v = data[e]
            for k in range(coef.shape[0]):
                out[d, k] += v * coef[k, col]


@njit(cache=True, nogil=True)
def _is_apostrophe(code):
    return code == 0x27 or code == 0x2019 or code == 0x60 or code == 0xB4  # '’`´


@njit(cache=True, nogil=True)
def lexicon_hits(codes, doc_starts, cls, trie, max_words):
    """Lexicon phrase hits of every doc: (doc_ptr, signal, first word, last word + 1, start, end),
    start and end being where the phrase's first word starts and its last word ends in the doc.

    Words are runs of word characters (and the combining marks after them) of the lower-cased
    text with apostrophes dropped, and each SINGLE character alone, as `app.signals.words` cuts
    them. The lexicon's words are terms of the table; its phrases are paths in a trie whose edge
    (node, word) is a pair key, and each node lists the signals of the phrase ending there
    (`trie`: the arrays of `app.signals.PhraseTrie`). Hits come by first word, then by length,
    as the trie is walked.
    """
    slots, hashes, tcodes, tstarts, edge_slots, edge_keys, edge_child, node_ptr, node_signal = trie
    n_docs = len(doc_starts) - 1
    n_words = len(tstarts) - 1
    doc_ptr = np.zeros(n_docs + 1, dtype=np.int64)
    cap = 16
    signal = np.empty(cap, dtype=np.int64)
    first = np.empty(cap, dtype=np.int64)
    last = np.empty(cap, dtype=np.int64)
    start = np.empty(cap, dtype=np.int64)
    stop = np.empty(cap, dtype=np.int64)
    n = 0
    buf = np.empty(64, dtype=np.uint32)
    ids = np.empty(64, dtype=np.int64)
    tok_start = np.empty(64, dtype=np.int64)
    tok_end = np.empty(64, dtype=np.int64)
    for d in range(n_docs):
        n_tok = 0
        length = 0
        h = _FNV_OFFSET
        base = doc_starts[d]
        end = doc_starts[d + 1]
        word_start = word_end = 0
        for pos in range(base, end + 1):
            if pos < end:
                code = codes[pos]
                if _is_apostrophe(code):
                    continue
                if (cls[code] & WORD_CHAR and not cls[code] & SINGLE) or (length and cls[code] & MARK):
                    if length == len(buf):
                        buf = _grow(buf, 2 * length)
                    if length == 0:
                        word_start = pos - base
                    buf[length] = code
                    length += 1
                    word_end = pos + 1 - base
                    h = _step(h, code)
                    continue
            if length:
                if n_tok == len(ids):
                    ids = _grow(ids, 2 * n_tok)
                    tok_start = _grow(tok_start, 2 * n_tok)
                    tok_end = _grow(tok_end, 2 * n_tok)
                ids[n_tok] = _find(h, buf, 0, length, slots, hashes, tcodes, tstarts)
                tok_start[n_tok] = word_start
                tok_end[n_tok] = word_end
                n_tok += 1
                length = 0
                h = _FNV_OFFSET
            if pos < end and cls[codes[pos]] & SINGLE:
                if n_tok == len(ids):
                    ids = _grow(ids, 2 * n_tok)
                    tok_start = _grow(tok_start, 2 * n_tok)
                    tok_end = _grow(tok_end, 2 * n_tok)
                buf[0] = codes[pos]
                ids[n_tok] = _find(_step(_FNV_OFFSET, codes[pos]), buf, 0, 1, slots, hashes, tcodes, tstarts)
                tok_start[n_tok] = pos - base
                tok_end[n_tok] = pos + 1 - base
                n_tok += 1
        for i in range(n_tok):
            node = 0
            for j in range(i, min(i + max_words, n_tok)):
                if ids[j] < 0:
                    break
                e = _find_pair(node * n_words + ids[j], edge_slots, edge_keys)
                if e < 0:
                    break
                node = edge_child[e]
                for s in range(node_ptr[node], node_ptr[node + 1]):
                    if n == cap:
                        cap = 2 * cap
                        signal = _grow(signal, cap)
                        first = _grow(first, cap)
                        last = _grow(last, cap)
                        start = _grow(start, cap)
                        stop = _grow(stop, cap)
                    signal[n] = node_signal[s]
                    first[n] = i
                    last[n] = j + 1
                    start[n] = tok_start[i]
                    stop[n] = tok_end[j]
                    n += 1
        doc_ptr[d + 1] = n
    return doc_ptr, signal[:n], first[:n], last[:n], start[:n], stop[:n]


@njit(cache=True, nogil=True)
def combinations(values, cols, all_ptr, all_idx, none_ptr, none_idx, any_ptr, any_idx):
    """Set each combination signal's column cols[c] of `values` to 1.0 in the rows where all of its
    `all` columns, none of its `none` columns and, when it has any, one of its `any` columns are
    non-zero; combination by combination in order, so one may build on an earlier one."""
    for r in range(values.shape[0]):
        for c in range(len(cols)):
            ok = True
            for k in range(all_ptr[c], all_ptr[c + 1]):
                if values[r, all_idx[k]] == 0:
                    ok = False
                    break
            if ok:
                for k in range(none_ptr[c], none_ptr[c + 1]):
                    if values[r, none_idx[k]] != 0:
                        ok = False
                        break
            if ok and any_ptr[c + 1] > any_ptr[c]:
                ok = False
                for k in range(any_ptr[c], any_ptr[c + 1]):
                    if values[r, any_idx[k]] != 0:
                        ok = True
                        break
            if ok:
                values[r, cols[c]] = 1.0
